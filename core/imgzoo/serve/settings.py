"""The server's settings, importable without the ``serve`` extra (and without torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from imgzoo.backends import DEFAULT_BACKEND, check_backend
from imgzoo.errors import BackendError, ConfigError, DeviceError
from imgzoo.hardware import INFERENCE_PRECISIONS

__all__ = ["LOCAL_HOSTS", "MIN_BODY_RATE", "ServeSettings"]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The ``Host`` names a server answers to whatever ``--allowed-hosts`` adds (with the address it binds)."""

MIN_BODY_RATE = 2**20
"""Bytes a second a request body must arrive at, beyond ``--body-timeout``: a body of declared
length N may take ``body_timeout + N / MIN_BODY_RATE`` seconds."""


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs its models and which requests it takes (see ``imgzoo serve --help``).

    Each field is the command-line flag of the same name (``max_request_bytes`` is
    ``--max-request-mb`` in MiB); :meth:`check` names the flags in its errors.
    """

    device: str = "auto"
    precision: str = "auto"
    backend: str = DEFAULT_BACKEND
    max_batch: int = 8
    max_wait_ms: float = 5.0
    queue: int = 64
    timeout: float = 30.0
    max_request_bytes: int = 32 * 2**20
    max_pixels: int = 4096 * 4096
    """Largest image (height x width, read from its header before decoding) a request may send."""
    max_models: int = 8
    """Most models loaded at once (one per task and set of options); the least recently used
    idle one makes room for a new one."""
    max_memory_bytes: int | None = None
    """Memory the requests in flight may take together, on top of the loaded models
    (``--max-memory-gb``), estimated for each before its image is decoded: a request that
    cannot fit alone gets 413, one that cannot fit now waits, a batch that would exceed it is
    split. None: half of the memory available when the server starts."""
    body_timeout: float = 30.0
    """Seconds a request's body may take to arrive, plus one for each MiB it declares
    (:data:`MIN_BODY_RATE`); a slower one gets 408 and gives its queue place back."""
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` names the server answers to besides :data:`LOCAL_HOSTS` and the address it
    binds (``--allowed-hosts``); ``*.example.org`` matches its subdomains, ``*`` any. Others get 400."""
    weights: dict[str, str] = field(default_factory=dict)
    """The weights to serve for a task (``--weights TASK=WEIGHTS``): a registered name, a path or
    a URL; a task not named here serves its default weights."""

    def check(self) -> None:
        """Refuse settings that cannot work (a ConfigError naming the flags), including a device
        that is not available here."""
        problems = []
        for flag, value, low in (
            ("--max-batch", self.max_batch, 1),
            ("--queue", self.queue, 1),
            ("--max-pixels", self.max_pixels, 1),
            ("--max-models", self.max_models, 1),
            ("--max-wait-ms", self.max_wait_ms, 0),
        ):
            if not value >= low:  # NaN too: it compares false
                problems.append((flag, f"must be at least {low}, got {value}"))
            elif not math.isfinite(value):
                problems.append((flag, f"must be finite, got {value}"))
        for flag, value, unit in (
            ("--max-request-mb", self.max_request_bytes / 2**20, ""),
            ("--timeout", self.timeout, " seconds"),
            ("--body-timeout", self.body_timeout, " seconds"),
            ("--max-memory-gb", (1 if self.max_memory_bytes is None else self.max_memory_bytes) / 2**30, ""),
        ):
            if not value > 0:
                problems.append((flag, f"must be more than 0{unit}, got {value:g}"))
            elif not math.isfinite(value):
                problems.append((flag, f"must be finite, got {value:g}"))
        try:
            check_backend(self.backend)
        except BackendError as error:
            problems.append(("--backend", str(error)))
        if self.precision not in INFERENCE_PRECISIONS:
            choices = ", ".join(INFERENCE_PRECISIONS)
            problems.append(("--precision", f"unknown precision {self.precision!r}: use one of {choices}"))
        device = self._device_problem()
        if device:
            problems.append(("--device", device))
        if problems:
            raise ConfigError("", problems)

    def _device_problem(self) -> str | None:
        """Why the device cannot be used here, if it cannot (checked by torch, which the server's
        models need anyway)."""
        if self.device == "auto":
            return None
        from imgzoo.runtime import resolve_device

        try:
            resolve_device(self.device)
        except DeviceError as error:
            return str(error)
        return None
