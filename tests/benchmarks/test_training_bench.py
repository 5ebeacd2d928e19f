"""Training speed: what the Trainer costs over a hand-written loop, how long steps wait for data,
and what bf16 buys over fp32.

Run: PYTHONPATH=core:plugins:tests python -m pytest tests/benchmarks/test_training_bench.py \
         --benchmark-enable -p no:cacheprovider -s
Each benchmark runs once (a training run is its own repetition); each asserts its target as a
ratio measured in the same run, prints it and keeps it in ``benchmark.extra_info``:

* the Trainer's images/s at least 0.95 of a hand-written loop's (same model, data and batch);
* steps wait for data at most 5 % of their time, with one loader worker;
* bf16 autocast trains at least 1.5x the images/s of fp32, on a CPU that computes bf16 natively.

Speeds are the median of per-step times after a warm-up, with torch on one thread: on a small
shared CPU, another process stalls a multi-threaded step far more than a single-threaded one,
and the median ignores the steps it still disturbs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import Field

import imgzoo
from imgzoo.data import PairTransform, Sample
from imgzoo.images import save_image
from imgzoo.model import Model
from imgzoo.runtime import auto_precision
from imgzoo.training import Callback, TrainConfig, Trainer, train
from imgzoo.training.batches import PairDataset
from toy_tasks import PixelNetConfig, declare, to_tensor

SIZE = 64
BATCH = 8
WARMUP_STEPS = 5


class ConvNet(Model):
    """Five 3x3 convolutions, 32 channels: enough work per step for loop overhead to be measurable."""

    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        width = 32
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU()]
        for _ in range(3):
            layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
        layers.append(torch.nn.Conv2d(width, 3, 3, padding=1))
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class BenchConfig(imgzoo.TaskConfig):
    image_size: int = Field(SIZE, ge=8, description="Training crop size.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate.")


class ConvInvertTask(imgzoo.Task):
    """Photographic negative with a small conv net (benchmark task)."""

    name = "conv-invert"
    description = "benchmark task"
    Config = BenchConfig

    def build_models(self) -> dict[str, Model]:
        return {"model": ConvNet(PixelNetConfig())}

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(sample.image)
        return x, 1 - x


class BenchPlugin:
    @imgzoo.hookimpl
    def register_tasks(self, register: Callable[[imgzoo.TaskDeclaration], None]) -> None:
        register(declare(ConvInvertTask))


@pytest.fixture(autouse=True)
def bench_task() -> Iterator[None]:
    name = imgzoo.register_plugin(BenchPlugin(), name="training-bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    imgzoo.unregister_plugin(name)


class StepTimes(Callback):
    """When each step ended: the durations of the steps after the warm-up."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, trainer: Trainer, step: int, losses: Mapping[str, torch.Tensor]) -> None:
        self.ends.append(time.perf_counter())

    @property
    def durations(self) -> list[float]:
        return list(np.diff(self.ends[WARMUP_STEPS - 1 :]))


def images_per_s(durations: list[float]) -> float:
    return BATCH / float(np.median(durations))


def in_memory_samples(count: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    return [Sample(image=rng.random((SIZE, SIZE, 3), dtype=np.float32)) for _ in range(count)]


def trainer_step_times(
    tmp_path: Path, samples: list[Sample], steps: int, precision: str = "fp32"
) -> list[float]:
    torch.manual_seed(0)
    task = ConvInvertTask()
    config = TrainConfig(
        steps=steps,
        batch_size=BATCH,
        precision=precision,
        device="cpu",
        num_workers=0,
        eval_every=10_000,
        checkpoint_every=10_000,
        log_every=10,
        progress=False,
    )
    timer = StepTimes()
    Trainer(task, task.build_models(), samples, samples[:BATCH], config, tmp_path, [timer]).fit()
    return timer.durations


def plain_loop_step_times(samples: list[Sample], steps: int) -> list[float]:
    """The loop one would write by hand: same model, data adapter, batch and optimizer."""
    torch.manual_seed(0)
    task = ConvInvertTask()
    model = task.build_models()["model"].train()
    optimizer = torch.optim.Adam(model.parameters(), lr=task.config.learning_rate)
    pairs = PairDataset(samples, task, PairTransform(SIZE, random_crop=True, flip=True), seed=0)
    ends: list[float] = []
    while len(ends) < steps:
        order = torch.randperm(len(samples)).tolist()
        for start in range(0, len(order) - BATCH + 1, BATCH):
            items = [pairs[(0, index)] for index in order[start : start + BATCH]]
            inputs, targets = (torch.stack(side) for side in zip(*items, strict=True))
            loss = F.l1_loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            float(loss.detach())  # what logging a loss costs
            ends.append(time.perf_counter())
            if len(ends) == steps:
                break
    return list(np.diff(ends[WARMUP_STEPS - 1 :]))


def test_trainer_throughput_matches_a_plain_loop(benchmark: Any, tmp_path: Path) -> None:
    """Trainer vs hand-written loop, interleaved to share the machine's ups and downs."""
    samples = in_memory_samples(64)
    steps = 20
    plain: list[float] = []
    trainer: list[float] = []

    def measure() -> None:
        for round_number in range(3):
            plain.extend(plain_loop_step_times(samples, steps))
            trainer.extend(trainer_step_times(tmp_path / f"run-{round_number}", samples, steps))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    plain_speed, trainer_speed = images_per_s(plain), images_per_s(trainer)
    ratio = trainer_speed / plain_speed
    benchmark.extra_info.update(
        plain_images_per_s=round(plain_speed, 2),
        trainer_images_per_s=round(trainer_speed, 2),
        ratio=round(ratio, 3),
        steps_measured=len(trainer),
    )
    speeds = f"plain loop {plain_speed:.1f} img/s, Trainer {trainer_speed:.1f} img/s"
    print(f"\n{speeds}: ratio {ratio:.3f} (target >= 0.95)")
    # Per step the Trainer adds only bookkeeping (a callback, a counter, a loss kept for the log)
    # to a step of tens of milliseconds, so it measures about 1.0; the 5 % below that is the
    # margin for a shared machine, whose noise the interleaved rounds and medians keep smaller.
    assert ratio >= 0.95


@pytest.mark.parametrize("source", ["minifigs", "png-folder"])
def test_data_wait_fraction(benchmark: Any, source: str, tmp_path: Path) -> None:
    """Share of step time spent waiting for batches, one loader worker."""
    if source == "minifigs":
        data = "minifigs:n=512"
    else:
        folder = tmp_path / "pngs"
        rng = np.random.default_rng(0)
        for index in range(256):
            save_image(folder / f"{index:03d}.png", rng.random((SIZE + 16, SIZE + 16, 3), dtype=np.float32))
        data = str(folder)
    results = []

    def run() -> None:
        results.append(
            train(
                "conv-invert",
                data,
                out=tmp_path / "run",
                steps=40,
                batch_size=BATCH,
                device="cpu",
                num_workers=1,
                eval_every=10_000,
                checkpoint_every=10_000,
                log_every=10,
                progress=False,
            )
        )

    benchmark.pedantic(run, rounds=1, iterations=1)
    (result,) = results
    # The first window includes starting the loader worker: a one-off, reported apart.
    windows = [
        event
        for event in map(json.loads, (tmp_path / "run" / "metrics.jsonl").open())
        if "data_wait" in event
    ]
    steady = float(np.mean([event["data_wait"] for event in windows[1:]]))
    benchmark.extra_info.update(
        data_wait_fraction=round(result.data_wait_fraction, 4),
        steady_data_wait_fraction=round(steady, 4),
        images_per_s=round(result.images_per_s, 2),
    )
    print(
        f"\n{source}: waiting for data {result.data_wait_fraction:.1%} of step time over the run, "
        f"{steady:.1%} after the first {windows[0]['step']} steps, at {result.images_per_s:.1f} img/s "
        "(target <= 5%)"
    )
    # The wait and the step time are measured by the same run. Starting the loader worker is a
    # one-off that a long run does not feel, so the target holds for the steps after the first
    # window: one worker makes a batch (decodes PNGs, or draws minifigures) in a fraction of a
    # step, and only a machine whose other core is busy makes it wait longer.
    assert steady <= 0.05


@pytest.mark.skipif(
    auto_precision(torch.device("cpu"))[0] != "bf16", reason="this CPU computes no bf16 natively"
)
def test_bf16_vs_fp32_throughput(benchmark: Any, tmp_path: Path) -> None:
    """Training images/s of the same run in fp32 and in bf16 autocast, where ``precision="auto"``
    picks bf16."""
    samples = in_memory_samples(64)
    figures: dict[str, float] = {}

    def measure() -> None:
        for precision in ("fp32", "bf16"):
            figures[precision] = images_per_s(
                trainer_step_times(tmp_path / precision, samples, 20, precision)
            )

    benchmark.pedantic(measure, rounds=1, iterations=1)
    speedup = figures["bf16"] / figures["fp32"]
    benchmark.extra_info.update(
        fp32_images_per_s=round(figures["fp32"], 2),
        bf16_images_per_s=round(figures["bf16"], 2),
        bf16_speedup=round(speedup, 3),
        device="cpu",
    )
    print(
        f"\nfp32 {figures['fp32']:.1f} img/s, bf16 {figures['bf16']:.1f} img/s: bf16/fp32 = {speedup:.2f} "
        "(target >= 1.5)"
    )
    # precision="auto" trains in bf16 on this CPU because its native bf16 convolutions do about
    # twice the work of fp32 ones per second; below 1.5x that choice would no longer be clear.
    assert speedup >= 1.5
