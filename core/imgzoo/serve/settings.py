"""The server's settings, importable without the ``serve`` extra (and without torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from imgzoo.backends import DEFAULT_BACKEND, check_backend
from imgzoo.errors import BackendError, ConfigError, DeviceError
from imgzoo.hardware import INFERENCE_PRECISIONS

__all__ = ["ServeSettings"]


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
            if value < low:
                problems.append((flag, f"must be at least {low}, got {value}"))
        if not self.max_request_bytes > 0:
            problems.append(
                ("--max-request-mb", f"must be more than 0, got {self.max_request_bytes / 2**20:g}")
            )
        if not self.timeout > 0:
            problems.append(("--timeout", f"must be more than 0 seconds, got {self.timeout}"))
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
