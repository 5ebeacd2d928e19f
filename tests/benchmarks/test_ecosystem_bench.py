"""Training from WebDataset shards against the same pictures as a folder, and the cost of the
TensorBoard and MLflow loggers against none.

Run: PYTHONPATH=core:plugins:tests python -m pytest tests/benchmarks/test_ecosystem_bench.py \
         --benchmark-enable -p no:cacheprovider -s
Each benchmark measures its candidates in alternating rounds (so that load from elsewhere hits
them alike), asserts its ratio as measured in the same run, prints it and keeps it in
``benchmark.extra_info``:

* training images/s from shards at least 0.95 of the folder's (steady state: the files in the
  page cache), and, reported beside it, reading every picture once from a cold cache (each
  file evicted with ``posix_fadvise(DONTNEED)``, which needs no privileges and touches no
  other file): one tar file read in order against a file per picture;
* the steps of a run logging to both loggers (``log_every`` at its default, 50) take at most
  1.03 times those of a run logging to neither. Opening the loggers (MLflow creates its SQLite
  database) is a one-off before the first step, reported apart.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_training_bench import (  # noqa: F401  (bench_task: the fixture)
    BATCH,
    SIZE,
    StepTimes,
    bench_task,
    in_memory_samples,
)

from imgzoo.data import ImageFolder, open_dataset
from imgzoo.data.pack import pack_shards, shard_pattern
from imgzoo.images import save_image
from imgzoo.training import train

ROUNDS = 5
PICTURES = 512


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """PICTURES JPEGs (as photos are stored) as a folder, and packed into shards of 128."""
    folder = tmp_path_factory.mktemp("pictures") / "folder"
    rng = np.random.default_rng(0)
    for index in range(PICTURES):
        smooth = rng.random((12, 12, 3), dtype=np.float32).repeat(8, 0).repeat(8, 1)
        save_image(folder / f"{index:04d}.jpg", np.clip(smooth + 0.05 * rng.random(smooth.shape), 0, 1))
    shards = pack_shards(folder, folder.parent / "shards", shard_size=128)
    return str(folder), f"webdataset:{shard_pattern(shards)}"


def _run(data: Any, out: Path, steps: int, **settings: Any) -> tuple[list[float], float]:
    """The run's step durations after the warm-up, and the time from the call to its first step."""
    timer = StepTimes()
    start = time.perf_counter()
    train(
        "conv-invert",
        data,
        out,
        callbacks=[timer],
        steps=steps,
        batch_size=BATCH,
        device="cpu",
        precision="fp32",
        eval_every=100_000,
        checkpoint_every=100_000,
        val_fraction=0,
        progress=False,
        **settings,
    )
    return timer.durations, timer.ends[0] - start


def _evict(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as file:
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def test_shards_train_as_fast_as_the_folder(
    benchmark: Any, pictures: tuple[str, str], tmp_path: Path
) -> None:
    folder, shards = pictures
    speeds: dict[str, list[float]] = {"folder": [], "shards": []}

    def measure() -> None:
        for round_number in range(ROUNDS):
            candidates = [("folder", folder), ("shards", shards)]
            for name, data in candidates[:: 1 if round_number % 2 else -1]:  # each goes first in turn
                durations, _ = _run(data, tmp_path / f"{name}-{round_number}", steps=40, num_workers=1)
                speeds[name].append(BATCH / statistics.median(durations))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = statistics.median(s / f for s, f in zip(speeds["shards"], speeds["folder"], strict=True))

    # Reading every picture once, from a cold page cache.
    folder_data, shard_data = ImageFolder(folder), open_dataset(shards, resolution=SIZE)
    files = list(folder_data.files)
    tars = list(shard_data.shards)  # type: ignore[attr-defined]
    cold: dict[str, list[float]] = {"folder": [], "shards": []}
    for _ in range(ROUNDS):
        for name, dataset, paths in (("folder", folder_data, files), ("shards", shard_data, tars)):
            _evict(paths)
            fresh = open_dataset(shards, resolution=SIZE) if name == "shards" else ImageFolder(folder)
            start = time.perf_counter()
            for index in range(len(dataset)):
                fresh[index]
            cold[name].append(time.perf_counter() - start)
    cold_ratio = statistics.median(f / s for f, s in zip(cold["folder"], cold["shards"], strict=True))

    folder_speed, shard_speed = statistics.median(speeds["folder"]), statistics.median(speeds["shards"])
    benchmark.extra_info.update(
        folder_images_per_s=round(folder_speed, 2),
        shards_images_per_s=round(shard_speed, 2),
        ratio=round(ratio, 3),
        cold_read_folder_s=round(statistics.median(cold["folder"]), 4),
        cold_read_shards_s=round(statistics.median(cold["shards"]), 4),
        cold_read_speedup=round(cold_ratio, 3),
    )
    print(
        f"\ntraining: folder {folder_speed:.1f} img/s, shards {shard_speed:.1f} img/s: ratio {ratio:.3f} "
        f"(target >= 0.95); cold read of {PICTURES} pictures: "
        f"folder {statistics.median(cold['folder']):.3f} s, "
        f"shards {statistics.median(cold['shards']):.3f} s: shards {cold_ratio:.2f}x as fast"
    )
    # A step reads the same decoded pictures either way; a shard's sample costs one seek in a file
    # kept open instead of an open() per picture, so shards are at least as fast.
    assert ratio >= 0.95


def test_logging_to_both_loggers_costs_at_most_3_percent(benchmark: Any, tmp_path: Path) -> None:
    data = in_memory_samples(64)  # no data loading to blur the figures: only the steps and the logs
    steps = 150
    totals: dict[str, list[float]] = {"none": [], "both": []}
    starts: dict[str, list[float]] = {"none": [], "both": []}

    def measure() -> None:
        for round_number in range(ROUNDS):
            candidates: list[tuple[str, list[str]]] = [("none", []), ("both", ["tensorboard", "mlflow"])]
            for name, loggers in candidates[:: 1 if round_number % 2 else -1]:
                out = tmp_path / f"{name}-{round_number}"
                durations, start = _run(data, out, steps, loggers=loggers, num_workers=0)
                totals[name].append(sum(durations))
                starts[name].append(start)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = statistics.median(b / n for b, n in zip(totals["both"], totals["none"], strict=True))
    benchmark.extra_info.update(
        steps_none_s=round(statistics.median(totals["none"]), 3),
        steps_both_s=round(statistics.median(totals["both"]), 3),
        ratio=round(ratio, 4),
        start_none_s=round(statistics.median(starts["none"]), 3),
        start_both_s=round(statistics.median(starts["both"]), 3),
    )
    print(
        f"\n{steps - 5} steps: no logger {statistics.median(totals['none']):.2f} s, tensorboard + mlflow "
        f"{statistics.median(totals['both']):.2f} s: ratio {ratio:.4f} (target <= 1.03); from the call to "
        f"the first step: {statistics.median(starts['none']):.2f} s without loggers, "
        f"{statistics.median(starts['both']):.2f} s with both (opening them is a one-off)"
    )
    assert ratio <= 1.03
