"""Train both built-in models on one GPU in under nine minutes, then judge them on held-out
minifigures through ``run()`` and write the weights and a report to a folder.

On a machine with a modern NVIDIA GPU, from the repository root (nothing to install beyond
torch, pluggy, pydantic, safetensors and OpenCV)::

    PYTHONPATH=core:plugins python examples/train_on_gpu.py OUT

Try it first on any CPU, a few steps of each stage on tiny batches (about a minute)::

    PYTHONPATH=core:plugins python examples/train_on_gpu.py OUT --smoke

Each task continues from its shipped default weights, in bf16 with a large batch, its data
generated on the machine's own CPU cores by the ``minifigs`` source (loader workers). Each stage
first times a few steps, then trains for as many steps as fit its share of the budget, so that
the learning-rate schedule runs to its end. Then both the new weights and the shipped ones are
evaluated through the whole pipeline (``imgzoo eval --full-resolution``) on
``minifigs:n=200,seed=1``, a seed never trained on, and ``OUT/report.json`` says which is better.
Replace the shipped weights only when the report says the new ones win.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import imgzoo
from imgzoo.training import Callback, Trainer, train

HELD_OUT = "minifigs:n=200,seed=1"
BUDGET_S = 9 * 60
EVALUATION_S = 75  # four whole-pipeline evaluations of 200 pictures, and loading
CALIBRATION_STEPS = 12


@dataclass
class Stage:
    """One task's training: its data, batch, share of the budget and settings (the task's and the
    trainer's, side by side)."""

    task: str
    data: str
    batch_size: int
    share: float
    settings: dict[str, Any] = field(default_factory=dict)
    compare: tuple[str, ...] = ()
    """The metrics the report compares, with the first deciding."""


STAGES = [
    Stage(
        "colorize",
        "minifigs:n=200000,seed=11",
        batch_size=256,
        share=0.4,
        settings={"loss": "mse", "learning_rate": 1e-3, "lr_schedule": "linear", "decay_start": 0.3},
        compare=("psnr", "colorfulness_ratio", "ssim"),
    ),
    Stage(
        "edges2photo",
        "minifigs:n=100000,seed=12",
        batch_size=64,
        share=0.6,
        settings={
            "gan_weight": 0.15,
            "learning_rate": 4e-4,
            "lr_schedule": "linear",
            "decay_start": 0.5,
            "export": "inference",
        },
        compare=("ssim", "psnr", "colorfulness_ratio", "sharpness_ratio", "checkerboard_ratio"),
    ),
]


class StepClock(Callback):
    """When each step ended, to time the steps after the first few (warm-up, worker start)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, trainer: Trainer, step: int, losses: Mapping[str, torch.Tensor]) -> None:
        self.ends.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        settled = self.ends[len(self.ends) // 2 :]
        return (settled[-1] - settled[0]) / max(1, len(settled) - 1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder for the weights, the runs and report.json")
    parser.add_argument("--smoke", action="store_true", help="a few steps on the CPU, to check the script")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole run")
    args = parser.parse_args()
    started = time.perf_counter()
    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: use --smoke to try the script on a CPU")
    workers = max(1, (os.cpu_count() or 2) - 2)
    if (args.out / "runs").exists():
        parser.error(f"{args.out} holds the runs of an earlier recipe: give a new folder")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    training_s = args.budget - EVALUATION_S
    for stage in STAGES:
        stage_started = time.perf_counter()
        batch = 2 if args.smoke else stage.batch_size
        common = {
            "data": "minifigs:n=64,seed=11" if args.smoke else stage.data,
            "weights": imgzoo.task_info(stage.task).default_weights,  # continue from the shipped ones
            **stage.settings,
            "device": device,
            # bf16 on the GPU; a CPU emulates it slowly unless it computes it natively (auto).
            "precision": "auto" if args.smoke else "bf16",
            "batch_size": batch,
            "num_workers": 0 if args.smoke else workers,
            "export_dtype": "fp16",
            "val_fraction": 0.02,
            "progress": False,
        }
        clock = StepClock()
        # A smoke run only checks that the timing code runs: its figure sets no step count.
        calibration_steps = 4 if args.smoke else CALIBRATION_STEPS
        timing_run = args.out / "runs" / f"{stage.task}-timing"
        never = 10**9  # no evaluation or checkpoint while timing
        train(
            stage.task,
            **{**common, "val_fraction": 0},  # no evaluation: only the steps are timed
            out=timing_run,
            steps=calibration_steps,
            eval_every=never,
            checkpoint_every=never,
            callbacks=[clock],
        )
        # The stage's share of the budget, less what timing it took and what starting a run costs.
        seconds = stage.share * training_s - 2 * (time.perf_counter() - stage_started)
        steps = 3 if args.smoke else max(calibration_steps, int(seconds / clock.seconds_per_step()))
        print(f"{stage.task}: {clock.seconds_per_step() * 1000:.0f} ms per step of {batch}: {steps} steps")
        result = train(
            stage.task,
            **common,
            out=args.out / "runs" / stage.task,
            steps=steps,
            eval_every=max(1, steps // 4),
            checkpoint_every=max(1, steps // 4),
            eval_samples=256,
        )
        assert result.weights is not None
        weights = args.out / f"{stage.task}.safetensors"
        shutil.copyfile(result.weights, weights)
        report[stage.task] = {"steps": steps, "batch_size": batch, "sha256": result.sha256}
        report[stage.task].update(judge(stage, weights, device=device, smoke=args.smoke))
    report["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def judge(stage: Stage, weights: Path, *, device: str, smoke: bool) -> dict[str, Any]:
    """The new and the shipped weights on the held-out pictures through ``run()``'s pipeline."""
    data = "minifigs:n=4,seed=1" if smoke else HELD_OUT
    measured = {
        name: dict(imgzoo.evaluate(stage.task, data, weights=source, device=device, mode="pipeline"))
        for name, source in (("new", str(weights)), ("shipped", None))
    }
    deciding = stage.compare[0]
    return {
        "held_out": data,
        "new": {key: round(measured["new"][key], 4) for key in stage.compare},
        "shipped": {key: round(measured["shipped"][key], 4) for key in stage.compare},
        "new_is_better": measured["new"][deciding] > measured["shipped"][deciding],
    }


if __name__ == "__main__":
    raise SystemExit(main())
