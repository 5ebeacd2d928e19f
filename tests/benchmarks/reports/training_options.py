"""What each speed option buys the built-in tasks' training on this machine, through the Trainer.
A report, not a test: the options are candidates to try, with no target to meet (the one that
became a default, bf16 where it is native, is asserted by ``tests/benchmarks/test_training_bench.py``).
From the repository root (a few minutes per task)::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/training_options.py [colorize|edges2photo]

For colorize (the paper's autoencoder, 128 px, batch 10) and edges2photo (U-Net and PatchGAN,
256 px, batch 4), the same short run is timed with the Trainer as it is by default and with one
option changed at a time:

* ``bf16``: mixed precision, ``precision="bf16"`` (autocast);
* ``channels_last``: every model in NHWC memory format;
* ``channels_first``: every model in NCHW (the U-Net defaults to NHWC, so this is its contrast);
* ``fused``: the optimizers' fused kernels (Adam ``fused=True``; RMSprop has none in torch, so
  its multi-tensor ``foreach=True`` path);
* ``compile``: every model through ``torch.compile`` (inductor, a C++ compiler on the CPU); its
  compile time is reported apart from the steady speed.

Each figure is a ratio of images per second over the default Trainer, measured in one process,
the variants taking turns in rounds so that another process's load falls on all of them alike.
Speeds are medians of the steps after a warm-up, torch on one thread.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo import plugins
from imgzoo.data.spec import open_dataset
from imgzoo.training import Callback, TrainConfig, Trainer

WARMUP_STEPS = 4
MEASURED_STEPS = 8
ROUNDS = 2

TASKS: dict[str, dict[str, Any]] = {
    "colorize": {"settings": {"image_size": 128}, "batch": 10},
    "edges2photo": {"settings": {"image_size": 256, "ngf": 32, "ndf": 32, "gan_weight": 0.15}, "batch": 4},
}


class StepClock(Callback):
    def __init__(self) -> None:
        self.ends: list[float] = [time.perf_counter()]

    def on_step_end(self, trainer: Trainer, step: int, losses: Mapping[str, torch.Tensor]) -> None:
        self.ends.append(time.perf_counter())

    def first_step_s(self) -> float:
        return self.ends[1] - self.ends[0]

    def median_step_s(self) -> float:
        return float(np.median(np.diff(self.ends[WARMUP_STEPS:])))


def _fused_optimizers(task: Any) -> None:
    """Make ``task.configure_optimizers`` build the same optimizers with fused (or foreach) kernels."""
    build = task.configure_optimizers

    def fused(models: Mapping[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        optimizers = {}
        for name, optimizer in build(models).items():
            kernel = "fused" if "fused" in optimizer.defaults else "foreach"
            groups = [{**group, kernel: True} for group in optimizer.param_groups]
            optimizers[name] = type(optimizer)(groups)
        return optimizers

    task.configure_optimizers = fused


def _layout(memory_format: torch.memory_format) -> Callable[[dict[str, torch.nn.Module]], None]:
    def convert(models: dict[str, torch.nn.Module]) -> None:
        for model in models.values():
            model.to(memory_format=memory_format)  # type: ignore[call-overload]  # missing from the stubs

    return convert


def _compiled(models: dict[str, torch.nn.Module]) -> None:
    for model in models.values():
        model.forward = torch.compile(model.forward)  # type: ignore[method-assign]  # same module, compiled call


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "bf16": {"precision": "bf16"},
    "channels_last": {"models": _layout(torch.channels_last)},
    "channels_first": {"models": _layout(torch.contiguous_format)},
    "fused": {"task": _fused_optimizers},
    "compile": {"models": _compiled},
}


def time_run(task_name: str, variant: dict[str, Any], out: Path) -> StepClock:
    spec = TASKS[task_name]
    task_class = plugins.get_task_class(task_name)
    task = task_class(task_class.Config(**spec["settings"]))
    torch.manual_seed(0)
    models = dict(task.build_models())
    variant.get("models", lambda models: None)(models)
    variant.get("task", lambda task: None)(task)
    data = open_dataset("minifigs:n=64", resolution=spec["settings"]["image_size"])
    config = TrainConfig(
        steps=WARMUP_STEPS + MEASURED_STEPS,
        batch_size=spec["batch"],
        precision=variant.get("precision", "fp32"),
        device="cpu",
        num_workers=0,
        val_fraction=0,
        eval_every=10**9,
        checkpoint_every=10**9,
        log_every=10**9,
        progress=False,
    )
    clock = StepClock()
    Trainer(task, models, data, [], config, out, [clock]).fit()
    return clock


def report(task_name: str, out: Path) -> None:
    """Images/s of each option as a ratio over the default Trainer, the variants in turns."""
    torch._dynamo.reset()
    medians: dict[str, list[float]] = {name: [] for name in VARIANTS}
    first_steps: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_number in range(ROUNDS):
        for name, variant in VARIANTS.items():
            clock = time_run(task_name, variant, out / f"{name}-{round_number}")
            medians[name].append(clock.median_step_s())
            first_steps[name].append(clock.first_step_s())
    batch = TASKS[task_name]["batch"]
    base = float(np.median(medians["default"]))
    print(f"\n{task_name}: default Trainer {batch / base:.2f} images/s (one thread)")
    for name in VARIANTS:
        step = float(np.median(medians[name]))
        extra = f", first step {min(first_steps[name]):.1f} s" if name == "compile" else ""
        print(f"  {name:15s} {batch / step:6.2f} images/s  {base / step:5.2f}x{extra}", flush=True)


def main() -> None:
    torch.set_num_threads(1)  # figures for one core, comparable between runs on a shared machine
    for task_name in sys.argv[1:] or list(TASKS):
        with tempfile.TemporaryDirectory() as folder:
            report(task_name, Path(folder))


if __name__ == "__main__":
    main()
