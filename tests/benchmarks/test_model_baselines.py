"""The shipped colorize weights against the baselines a colorizer must beat, through ``run()`` at
full resolution on held-out minifigures (seed 1, never trained or tuned on), measured as
``imgzoo eval colorize --full-resolution`` measures: each picture made into the input a user
gives (``task.degrade``), the result compared with the picture by ``task.image_metrics``.
The baselines: the gray input (``image_metrics`` reports it as ``*_gray``), and the mean colour,
the input's own lightness with the training data's mean chroma everywhere (from 500 pictures of
``minifigs`` seed 4, a training seed). The weights must beat both on PSNR and SSIM. Run::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_model_baselines.py -p no:cacheprovider -s

edges2photo's figures against its baselines have no target (a flat mean colour scores well on
SSIM and PSNR, which reward a flat guess on the smooth backgrounds): they are a report,
``python tests/benchmarks/reports/edges2photo_baselines.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

import imgzoo
from imgzoo.data import open_dataset
from imgzoo.task import Task
from imgzoo.training.evaluation import _rgb_tensor as _rgb  # as imgzoo eval converts pictures

HELD_OUT = "minifigs:n=200,seed=1"
TRAINING = "minifigs:n=500,seed=4"
SIZE = 256


def _mean_over_training(convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The mean, over every pixel of the training pictures, of ``convert(picture)``'s channels."""
    dataset = open_dataset(TRAINING, resolution=SIZE, seed=0)
    return np.mean(
        [convert(dataset[index].image).reshape(-1, 3).mean(axis=0) for index in range(len(dataset))], axis=0
    )


def _measure(task: Task, baseline: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
    """``task.image_metrics`` of ``baseline(input)`` against each held-out picture, averaged."""
    dataset = open_dataset(HELD_OUT, resolution=SIZE, seed=0)
    totals: dict[str, float] = {}
    for index in range(len(dataset)):
        truth = dataset[index].image
        given = task.degrade(truth, np.random.default_rng(0))
        values = task.image_metrics(_rgb(baseline(given)), _rgb(truth), _rgb(given))
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + float(value) / len(dataset)
    return totals


def _row(name: str, metrics: dict[str, float], keys: list[str]) -> str:
    return f"  {name:<28}" + "  ".join(f"{key} {metrics[key]:.3f}" for key in keys)


def test_the_shipped_colorize_weights_beat_the_gray_input_and_the_mean_colour() -> None:
    task = imgzoo.load("colorize").task
    mean_lab = _mean_over_training(lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2Lab))

    def mean_colour(gray: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(np.ascontiguousarray(np.repeat(gray, 3, axis=2)), cv2.COLOR_RGB2Lab)
        lab[..., 1:] = mean_lab[1:]
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)

    keys = ["psnr", "ssim", "colorfulness_ratio"]
    baseline = _measure(task, mean_colour)
    shipped = dict(imgzoo.evaluate("colorize", HELD_OUT, mode="pipeline", resolution=SIZE))
    print(f"\ncolorize on {HELD_OUT} at {SIZE} px, through run():")
    print(_row("shipped weights", shipped, keys))
    print(_row("the mean colour", baseline, keys))
    print(f"  {'the gray input':<28}psnr {baseline['psnr_gray']:.3f}  ssim {baseline['ssim_gray']:.3f}")
    assert np.isfinite([baseline[key] for key in keys]).all()
    # Each figure is an average over the same 200 pictures measured in this run, so the
    # comparison is exact: no tolerance.
    assert shipped["psnr"] > max(baseline["psnr"], baseline["psnr_gray"])
    assert shipped["ssim"] > max(baseline["ssim"], baseline["ssim_gray"])
