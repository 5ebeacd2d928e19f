"""Framework overhead: what imgzoo adds around a model.

Run: python -m pytest tests/benchmarks/test_core_bench.py --benchmark-enable -p no:cacheprovider
Figures land in the benchmark table and in each benchmark's extra_info; nothing here asserts a time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import api, images
from toy_tasks import write_invert_weights, write_registry

pytestmark = pytest.mark.usefixtures("toy_tasks")


@pytest.fixture
def invert_registered(tmp_path: Path) -> None:
    sha256 = write_invert_weights(tmp_path / "w.safetensors")
    write_registry(tmp_path / "r.toml", "invert", {"exact": ("w.safetensors", sha256)}, default="exact")
    imgzoo.add_registry(tmp_path / "r.toml")


def _best_of(fn, repeat: int = 200) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _warm_and_bare(task_name: str, image: np.ndarray, benchmark) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best-of seconds of the task's own preprocess + forward + postprocess, and of a warm
    imgzoo.run() (benchmarked too), on ``image``."""
    imgzoo.run(task_name, image, weights=False)  # warm: pipeline cached
    pipeline = next(iter(api._cache.values()))
    task, models = pipeline.task, pipeline.models

    def bare() -> np.ndarray:
        with torch.inference_mode():
            pixels = images.read_images(image)[0][0].pixels
            out = task.forward(models, task.preprocess(pixels))
            return task.postprocess(out[0], pixels)

    bare_s = _best_of(bare)
    run_s = _best_of(lambda: imgzoo.run(task_name, image, weights=False))
    benchmark(imgzoo.run, task_name, image, weights=False)
    benchmark.extra_info.update(bare_ms=round(bare_s * 1e3, 4), run_ms=round(run_s * 1e3, 4))
    return bare_s, run_s


def test_warm_run_overhead(benchmark, invert_registered: None) -> None:  # type: ignore[no-untyped-def]
    """imgzoo.run() minus the task's own preprocess + forward + postprocess, on a 64x64 image."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bare_s, run_s = _warm_and_bare("invert", image, benchmark)
    benchmark.extra_info["overhead_ms"] = round((run_s - bare_s) * 1e3, 4)
    print(
        f"\nwarm run: {run_s * 1e3:.3f} ms, bare task work: {bare_s * 1e3:.3f} ms, "
        f"framework overhead: {(run_s - bare_s) * 1e3:.3f} ms (target < 1 ms)"
    )


def test_imgzoo_list_wall_time(benchmark) -> None:  # type: ignore[no-untyped-def]
    """`imgzoo list` as a user runs it: a fresh process (target < 0.3 s; no torch import)."""
    command = [shutil.which("imgzoo") or "imgzoo", "list"]
    if command[0] == "imgzoo" and shutil.which("imgzoo") is None:
        command = [sys.executable, "-m", "imgzoo.cli", "list"]
    benchmark.pedantic(
        lambda: subprocess.run(command, check=True, capture_output=True), rounds=10, iterations=1
    )
    benchmark.extra_info["median_s"] = benchmark.stats.stats.median
    print(f"\nimgzoo list: median {benchmark.stats.stats.median:.3f} s (target < 0.3 s)")


def test_cold_load_time(benchmark, invert_registered: None) -> None:  # type: ignore[no-untyped-def]
    """imgzoo.load() with nothing cached in the process but the imports (hash check, build, weights)."""

    def cold_load() -> None:
        api.clear_cache()
        imgzoo.load("invert")

    benchmark.pedantic(cold_load, rounds=20, iterations=1)
    print(f"\ncold load(): median {benchmark.stats.stats.median * 1e3:.2f} ms")


@pytest.mark.usefixtures("contract_tasks")
def test_warm_upscale_run_against_its_bare_forward(benchmark) -> None:  # type: ignore[no-untyped-def]
    """imgzoo.run() of the 2x toy task against the task's own work alone, on a 64x64 image
    (target: within 1.1x)."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bare_s, run_s = _warm_and_bare("toy-upscale", image, benchmark)
    benchmark.extra_info["ratio"] = run_s / bare_s
    print(f"\nwarm 2x run: {run_s * 1e3:.3f} ms, bare: {bare_s * 1e3:.3f} ms, ratio {run_s / bare_s:.3f}")
