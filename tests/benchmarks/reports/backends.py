"""A warm ``imgzoo.run()`` of each built-in task with each backend, side by side: PyTorch at fp32
against ONNX Runtime (always fp32, on the CPU), with the shipped weights, on 256 and 1024 px
pictures. Only the forward pass differs; pre- and post-processing are the same code. A report,
not a test: the ONNX Runtime backend is for running the exported graph anywhere, not for speed
over PyTorch, so neither has to win. From the repository root (``pip install 'imgzoo[onnx]'``)::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/backends.py

ONNX Runtime takes as many threads as torch, so ``OMP_NUM_THREADS=1`` gives single-threaded
figures for both. The two backends are timed interleaved, each keeping its best of a few calls,
so that a burst of someone else's work on a shared machine slows both rather than one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import cv2
import numpy as np

import imgzoo

TASKS = ("colorize", "edges2photo")
SIZES = (256, 1024)
BACKENDS = ("torch", "onnxruntime")
CALLS = 3


def picture(task: str, size: int) -> np.ndarray:
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


def warm_run(task: str, size: int, backend: str) -> Callable[[], object]:
    image = picture(task, size)

    def call() -> object:
        return imgzoo.run(task, image, device="cpu", precision="fp32", backend=backend)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()  # loads (and, for onnxruntime, exports once into the cache)
    return call


def main() -> None:
    print(f"{'task':<12} {'size':>9} {'torch fp32':>11} {'onnxruntime':>12} {'torch/ort':>10}")
    for task in TASKS:
        for size in SIZES:
            calls = {backend: warm_run(task, size, backend) for backend in BACKENDS}
            best = dict.fromkeys(BACKENDS, float("inf"))
            for _ in range(CALLS):
                for backend, call in calls.items():
                    start = time.perf_counter()
                    call()
                    best[backend] = min(best[backend], time.perf_counter() - start)
            torch_s, ort_s = best["torch"], best["onnxruntime"]
            times = f"{torch_s * 1000:>9.1f}ms {ort_s * 1000:>10.1f}ms"
            print(f"{task:<12} {size:>4}x{size:<4} {times} {torch_s / ort_s:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
