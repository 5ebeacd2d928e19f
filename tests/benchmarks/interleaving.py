"""Timing candidates against each other on a shared machine: in alternating rounds, so that
load from elsewhere hits them alike, and as ratios measured in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

ROUNDS = 5


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(candidates: dict[str, Callable[[], object]], *, repeats: int) -> dict[str, list[float]]:
    """Each candidate's median time per round, rounds alternating between the candidates."""
    for function in candidates.values():
        function()  # warm-up: oneDNN picks and caches its kernels (and weights get packed) on the first call
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(ROUNDS):
        for name, function in candidates.items():
            times[name].append(median_seconds(function, repeats))
    return times


def ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """The median over rounds of ``numerator``'s time over ``denominator``'s."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator], strict=True))
