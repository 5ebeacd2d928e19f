"""A warm ``imgzoo.run()`` of each built-in task with each backend, side by side: PyTorch at fp32
against ONNX Runtime (always fp32, on the CPU), with the shipped weights, on 256 and 1024 px
pictures. Only the forward pass differs; pre- and post-processing are the same code.

Run: OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_backends_bench.py -p no:cacheprovider \
        --benchmark-enable -s
(``-s`` shows the table of ratios; ONNX Runtime takes as many threads as torch, so
``OMP_NUM_THREADS=1`` gives single-threaded figures for both.) The two backends are timed
interleaved, each keeping its best of a few calls, so that a burst of someone else's work on a
shared machine slows both rather than one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import cv2
import numpy as np
import pytest

import imgzoo

TASKS = ("colorize", "edges2photo")
SIZES = (256, 1024)
BACKENDS = ("torch", "onnxruntime")


def _picture(task: str, size: int) -> np.ndarray:
    """A gray photo for colorize; black lines on white for edges2photo."""
    rng = np.random.default_rng(0)
    if task == "edges2photo":
        canvas = np.full((size, size), 255, np.uint8)
        for _ in range(size // 8):
            start, end = rng.integers(0, size, 2), rng.integers(0, size, 2)
            cv2.line(canvas, (int(start[0]), int(start[1])), (int(end[0]), int(end[1])), 0, 1)
        return np.dstack([canvas] * 3)
    smooth = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), size / 32)
    return (255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)[..., None]


def _warm_run(task: str, size: int, backend: str) -> Callable[[], object]:
    picture = _picture(task, size)

    def call() -> object:
        return imgzoo.run(task, picture, device="cpu", precision="fp32", backend=backend)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()  # loads (and, for onnxruntime, exports once into the cache)
    return call


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("task", TASKS)
def test_warm_run(benchmark: pytest.FixtureDef, task: str, size: int, backend: str) -> None:
    benchmark.group = f"{task} {size}x{size}"
    benchmark.pedantic(_warm_run(task, size, backend), rounds=3, warmup_rounds=1)


def test_ratios_side_by_side() -> None:
    rows = []
    for task in TASKS:
        for size in SIZES:
            calls = {backend: _warm_run(task, size, backend) for backend in BACKENDS}
            best = dict.fromkeys(BACKENDS, float("inf"))
            for _ in range(3):
                for backend, call in calls.items():
                    start = time.perf_counter()
                    call()
                    best[backend] = min(best[backend], time.perf_counter() - start)
            rows.append((task, size, best["torch"], best["onnxruntime"]))
    print(f"\n{'task':<12} {'size':>9} {'torch fp32':>11} {'onnxruntime':>12} {'torch/ort':>10}")
    for task, size, torch_s, ort_s in rows:
        times = f"{torch_s * 1000:>9.1f}ms {ort_s * 1000:>10.1f}ms"
        print(f"{task:<12} {size:>4}x{size:<4} {times} {torch_s / ort_s:>9.2f}x")
    assert all(seconds > 0 for row in rows for seconds in row[2:])
