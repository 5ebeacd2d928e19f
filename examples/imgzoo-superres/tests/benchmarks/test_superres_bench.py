"""What imgzoo adds around the super-resolution network: a warm ``imgzoo.run()`` against the
task's own preprocess + forward + postprocess, at 256x256 (target: within 1.1x).

Run: python -m pytest tests/benchmarks --benchmark-enable -p no:cacheprovider -s
(not part of the default run; nothing here asserts a time).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import imgzoo
import numpy as np
import pytest
import torch

REPEATS = 30


def _best_seconds(call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("task", ["superres", "superres-x4"])
def test_warm_run_against_the_bare_network(benchmark, task: str) -> None:  # type: ignore[no-untyped-def]
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    pipeline = imgzoo.load(task, device="cpu")  # the shipped weights, as run() loads them
    pixels = image.astype(np.float32) / 255

    def bare() -> np.ndarray:
        with torch.inference_mode():
            output = pipeline.task.forward(pipeline.models, pipeline.task.preprocess(pixels))
            return pipeline.task.postprocess(output[0], pixels)

    def warm_run() -> np.ndarray:
        return imgzoo.run(task, image, device="cpu")

    warm_run()  # loads and caches the pipeline
    bare_s, run_s = _best_seconds(bare), _best_seconds(warm_run)
    benchmark(warm_run)
    benchmark.extra_info.update(bare_ms=round(bare_s * 1e3, 3), run_ms=round(run_s * 1e3, 3))
    benchmark.extra_info["ratio"] = run_s / bare_s
    print(f"\n{task} at 256x256: run {run_s * 1e3:.2f} ms, bare {bare_s * 1e3:.2f} ms, x{run_s / bare_s:.3f}")
