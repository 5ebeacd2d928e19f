"""The shipped edges2photo weights against its baselines, through ``run()`` at full resolution on
held-out minifigures (seed 1, never trained or tuned on), measured as ``imgzoo eval edges2photo
--full-resolution`` measures: each picture made into the input a user gives (``task.degrade``,
its edge map), the result compared with the picture by ``task.image_metrics``. The baselines:
the mean colour, every pixel the training data's mean RGB (from 500 pictures of ``minifigs``
seed 4, a training seed), and the L1-only U-Net, its learned baseline, shipped as the
``minifigs-l1`` weights.

A report, not a test: most of a minifigure picture is a smooth, muted background, which SSIM
and PSNR reward a flat guess for, so a generator that draws a figure and a textured background
can score below the flat mean colour while looking far more like a photo; no ordering of these
figures is a target. (colorize's shipped weights must beat theirs:
``tests/benchmarks/test_model_baselines.py``.) From the repository root::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/edges2photo_baselines.py
"""

from __future__ import annotations

import numpy as np

import imgzoo
from imgzoo.data import open_dataset
from imgzoo.training.evaluation import _rgb_tensor as _rgb  # as imgzoo eval converts pictures

HELD_OUT = "minifigs:n=200,seed=1"
TRAINING = "minifigs:n=500,seed=4"
SIZE = 256
KEYS = ("psnr", "ssim")


def mean_training_colour() -> np.ndarray:
    """The mean RGB over every pixel of the training pictures."""
    dataset = open_dataset(TRAINING, resolution=SIZE, seed=0)
    return np.mean(
        [dataset[index].image.reshape(-1, 3).mean(axis=0) for index in range(len(dataset))], axis=0
    )


def mean_colour_metrics(task: imgzoo.Task) -> dict[str, float]:
    """``task.image_metrics`` of a flat picture of the mean colour against each held-out picture."""
    colour = mean_training_colour().astype(np.float32)
    dataset = open_dataset(HELD_OUT, resolution=SIZE, seed=0)
    totals: dict[str, float] = {}
    for index in range(len(dataset)):
        truth = dataset[index].image
        given = task.degrade(truth, np.random.default_rng(0))
        flat = np.broadcast_to(colour, (*given.shape[:2], 3))
        for key, value in task.image_metrics(_rgb(flat), _rgb(truth), _rgb(given)).items():
            totals[key] = totals.get(key, 0.0) + float(value) / len(dataset)
    return totals


def shipped(weights: str | None = None) -> dict[str, float]:
    return dict(imgzoo.evaluate("edges2photo", HELD_OUT, weights=weights, mode="pipeline", resolution=SIZE))


def main() -> None:
    task = imgzoo.load("edges2photo").task
    rows = {
        "shipped weights": shipped(),
        "the mean colour": mean_colour_metrics(task),
        "the L1-only U-Net": shipped("minifigs-l1"),
    }
    print(f"edges2photo on {HELD_OUT} at {SIZE} px, through run():")
    for name, metrics in rows.items():
        print(f"  {name:<28}" + "  ".join(f"{key} {metrics[key]:.3f}" for key in KEYS))


if __name__ == "__main__":
    main()
