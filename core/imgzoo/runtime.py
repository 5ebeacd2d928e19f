"""Device and precision choices, shared by inference and training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from imgzoo.errors import ZooError

__all__ = ["PRECISIONS", "Precision", "autocast", "resolve_device"]

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else must be available."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ZooError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(
            f"device {device!r} asked for, but CUDA is not available here; use --device cpu or auto"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError(
            f"device {device!r} asked for, but MPS is not available here; use --device cpu or auto"
        )
    return resolved


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ZooError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed-precision autocast for ``bf16``/``fp16``; nothing for ``fp32``."""
    check_precision(precision)
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield
