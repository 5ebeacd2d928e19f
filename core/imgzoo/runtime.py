"""Device and precision choices, shared by inference and training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from imgzoo.errors import DeviceError
from imgzoo.hardware import INFERENCE_PRECISIONS, PRECISIONS, Precision, cpu_bf16_feature

__all__ = [
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "Precision",
    "auto_precision",
    "autocast",
    "resolve_device",
    "resolve_precision",
]

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
        raise DeviceError(
            f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps", device=device
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} asked for, but CUDA is not available here; use --device cpu or auto",
            device=device,
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"device {device!r} asked for, but MPS is not available here; use --device cpu or auto",
            device=device,
        )
    return resolved


def check_precision(precision: str, *, allowed: tuple[str, ...] = PRECISIONS) -> str:
    if precision not in allowed:
        raise DeviceError(
            f"unknown precision {precision!r}: use one of {', '.join(allowed)}", precision=precision
        )
    return precision


def auto_precision(device: torch.device) -> tuple[str, str]:
    """(precision, why) for ``precision="auto"``: bf16 where ``device`` computes it natively
    (a CPU with AVX512-BF16 or AMX, a CUDA GPU of compute capability 8.0 or newer), fp32
    elsewhere; emulated bf16 would be slower than fp32. Never fp16: it can overflow, so it is
    only used when asked for."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major >= 8:
            return "bf16", f"auto: this GPU has compute capability {major}.{minor}"
        return "fp32", f"auto: this GPU's compute capability {major}.{minor} is below 8.0, no native bf16"
    if device.type == "cpu":
        feature = cpu_bf16_feature()
        if feature is not None:
            return "bf16", f"auto: this CPU has {feature}"
        return "fp32", "auto: this CPU has no native bf16 (AVX512-BF16 or AMX)"
    return "fp32", f"auto: bf16 is not known to be native on {device.type}"


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str | None]:
    """The precision inference runs at and, for ``"auto"``, why."""
    check_precision(precision, allowed=INFERENCE_PRECISIONS)
    if precision == "auto":
        return auto_precision(device)
    return precision, None


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed-precision autocast for ``bf16``/``fp16``; nothing for ``fp32``."""
    check_precision(precision)
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield
