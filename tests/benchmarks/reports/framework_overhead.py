"""What imgzoo adds around a model, in absolute figures: the overhead of a warm ``imgzoo.run()``
beyond the task's own preprocess + forward + postprocess, on toy networks whose own work is a
fraction of a millisecond, and the time of a cold ``imgzoo.load()`` (hash check, build, weights).
A report, not a test: these figures have no reference to hold them to (the ratios on real
networks are asserted in ``tests/benchmarks``). From the repository root::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/framework_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import imgzoo
from imgzoo import api, images

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS))  # the toy tasks of the test suite

from toy_contract_tasks import ContractTasksPlugin  # noqa: E402
from toy_tasks import ToyTasksPlugin, write_invert_weights, write_registry  # noqa: E402

REPEATS = 200
ROUNDS = 5


def median_ms(function: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def warm_run_overhead(task_name: str, image: np.ndarray) -> tuple[float, float]:
    """Median ms of a warm ``run()`` and of the task's own work alone, rounds interleaved."""
    pipeline = imgzoo.load(task_name, weights=False)  # the task and models run() builds
    task, models = pipeline.task, pipeline.models

    def bare() -> np.ndarray:
        with torch.inference_mode():
            pixels = images.read_images(image)[0][0].pixels
            return task.postprocess(task.forward(models, task.preprocess(pixels))[0], pixels)

    def run() -> object:
        return imgzoo.run(task_name, image, weights=False)

    run(), bare()  # warm: the pipeline cached, oneDNN's kernels chosen
    rounds = [(median_ms(run), median_ms(bare)) for _ in range(ROUNDS)]
    return statistics.median(r for r, _ in rounds), statistics.median(b for _, b in rounds)


def cold_load_ms(folder: Path) -> float:
    sha256 = write_invert_weights(folder / "w.safetensors")
    write_registry(folder / "r.toml", "invert", {"exact": ("w.safetensors", sha256)}, default="exact")
    imgzoo.add_registry(folder / "r.toml")
    times = []
    for _ in range(20):
        api.clear_cache()
        start = time.perf_counter()
        imgzoo.load("invert")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
    imgzoo.register_plugin(ContractTasksPlugin(), name="contract-tasks")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    print(f"torch on {torch.get_num_threads()} thread(s); medians of {ROUNDS} interleaved rounds")
    for task_name in ("invert", "toy-upscale"):
        run_ms, bare_ms = warm_run_overhead(task_name, image)
        print(
            f"warm run() of {task_name} on 64x64: {run_ms:.3f} ms, the task's own work {bare_ms:.3f} ms, "
            f"framework overhead {run_ms - bare_ms:.3f} ms"
        )
    with tempfile.TemporaryDirectory() as folder:
        print(f"cold load() of invert with registered weights: median {cold_load_ms(Path(folder)):.2f} ms")


if __name__ == "__main__":
    main()
