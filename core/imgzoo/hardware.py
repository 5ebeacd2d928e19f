"""What the CPU computes natively, read without importing torch (``imgzoo info`` reports it),
and the names of the precisions imgzoo computes in."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, get_args

__all__ = ["INFERENCE_PRECISIONS", "PRECISIONS", "Precision", "PrecisionChoice", "cpu_bf16_feature"]

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PrecisionChoice = Literal["auto", Precision]
"""What inference and training accept: ``"auto"`` picks per device (:func:`imgzoo.runtime.auto_precision`)."""
INFERENCE_PRECISIONS: tuple[str, ...] = get_args(PrecisionChoice)

# The flags Linux lists for native bf16 arithmetic, with the names users know.
_BF16_FLAGS = (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))
_CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_bf16_feature() -> str | None:
    """The CPU features that compute bf16 natively (``"AVX512-BF16 and AMX-BF16"``), or None
    where there are none or it cannot be told (no ``/proc/cpuinfo``: macOS, Windows)."""
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break  # every core of one machine lists the same flags
    found = [name for flag, name in _BF16_FLAGS if flag in flags]
    return " and ".join(found) or None
