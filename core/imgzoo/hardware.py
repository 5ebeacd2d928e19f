"""What the CPU computes natively and how much memory this process may still take, read
without importing torch (``imgzoo info`` reports the former), and the names of the precisions
imgzoo computes in."""

from __future__ import annotations

import functools
import os
import resource
from pathlib import Path
from typing import Literal, get_args

__all__ = [
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "Precision",
    "PrecisionChoice",
    "cpu_bf16_feature",
    "is_out_of_memory",
    "memory_available",
]

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


_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def memory_available() -> int:
    """Bytes this process can still allocate without being killed or refused: the least of the
    machine's available memory, what its cgroup's limit leaves, and what its address-space limit
    (``ulimit -v``) leaves. The machine's whole memory where none can be read (not Linux)."""
    candidates = [_meminfo_available(), _cgroup_room(), _address_space_room()]
    known = [value for value in candidates if value is not None]
    if known:
        return max(0, min(known))
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """The cgroup's limit less its usage (cgroup v2, else v1); None without a limit."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            limit = (_CGROUP / limit_file).read_text().strip()
            usage = (_CGROUP / usage_file).read_text().strip()
        except OSError:
            continue
        # v1 writes "no limit" as a number near 2**63.
        if limit.isdigit() and usage.isdigit() and int(limit) < 2**60:
            return int(limit) - int(usage)
        return None
    return None


def _address_space_room() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        # The first field of /proc/self/statm: the pages of address space in use.
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return soft - pages * os.sysconf("SC_PAGE_SIZE")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed: Python's MemoryError, or the RuntimeError
    PyTorch's allocators raise (CPU: "can't allocate memory"; CUDA: "out of memory")."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)
