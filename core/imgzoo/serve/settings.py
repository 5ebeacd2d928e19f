"""The server's settings, importable without the ``serve`` extra."""

from __future__ import annotations

from dataclasses import dataclass

from imgzoo.errors import ConfigError

__all__ = ["DEFAULT_BACKEND", "ServeSettings"]

DEFAULT_BACKEND = "torch"


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs its models and which requests it takes (see ``imgzoo serve --help``)."""

    device: str = "auto"
    precision: str = "auto"
    backend: str = DEFAULT_BACKEND
    max_batch: int = 8
    max_wait_ms: float = 5.0
    queue: int = 64
    timeout: float = 30.0
    max_request_bytes: int = 32 * 2**20

    def check(self) -> None:
        """Refuse settings that cannot work, naming the setting."""
        for name, value, low in (
            ("max_batch", self.max_batch, 1),
            ("queue", self.queue, 1),
            ("max_request_bytes", self.max_request_bytes, 1),
            ("max_wait_ms", self.max_wait_ms, 0),
        ):
            if value < low:
                raise ConfigError("", [(name, f"must be at least {low}, got {value}")])
        if not self.timeout > 0:
            raise ConfigError("", [("timeout", f"must be more than 0 seconds, got {self.timeout}")])
