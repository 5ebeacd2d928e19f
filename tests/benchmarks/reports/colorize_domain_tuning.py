"""The pictures colorize's domain fade was tuned on, and what it does to each: the domain score,
and ``run()``'s PSNR and SSIM against the gray input's, without the fade and with it.

Tuning pictures only (never the photos the fade is reported on): 40 minifigures of seed 4 (the
statistics were fitted on seed 2 and their thresholds placed by seed 3; seed 1 is the evaluation
seed), 36 pictures drawn here with OpenCV (colour gradients, smooth and fine textures, landscape-like
scenes, cluttered shapes, colour bars with a chequerboard) and the repository's examples/photos.
"Worse" marks a picture whose faded result is below its gray input by more than 0.1 dB of PSNR or
0.005 of SSIM. A report, not a test. From the repository root::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/colorize_domain_tuning.py
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

import imgzoo
from imgzoo.data import open_dataset
from imgzoo.images import load_image
from imgzoo.training.evaluation import _rgb_tensor as _rgb  # as imgzoo eval converts pictures

EXAMPLE_PHOTOS = Path(__file__).resolve().parents[3] / "examples" / "photos"


def synthetic_pictures(count: int = 36, size: int = 256, seed: int = 123) -> Iterator[tuple[str, np.ndarray]]:
    """Non-minifigure pictures, float32 RGB: six kinds in turn."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        height, width = size, int(size * rng.uniform(0.75, 1.33)) // 8 * 8
        kind = index % 6
        if kind == 0:  # a colour gradient between three corners
            across, down = np.linspace(0, 1, width)[None, :, None], np.linspace(0, 1, height)[:, None, None]
            first, second, third = rng.uniform(0, 1, (3, 3))
            picture = first * (1 - across) * (1 - down) + second * across + third * down * (1 - across)
        elif kind == 1:  # smooth colour noise
            noise = rng.normal(size=(height // 8, width // 8, 3))
            picture = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
            picture = (picture - picture.min()) / (np.ptp(picture) + 1e-6)
        elif kind == 2:  # fine tinted texture
            noise = cv2.GaussianBlur(rng.normal(size=(height, width)), (0, 0), rng.uniform(0.8, 3))
            picture = np.clip(0.5 + 0.25 * noise / noise.std(), 0, 1)[..., None] * rng.uniform(0.2, 1, 3)
        elif kind == 3:  # a landscape: sky gradient, ground, hills, a sun
            picture = np.zeros((height, width, 3))
            horizon = int(height * rng.uniform(0.4, 0.7))
            fraction = np.linspace(0, 1, horizon)[:, None, None]
            picture[:horizon] = rng.uniform(0.3, 1, 3) * (1 - fraction) + rng.uniform(0, 1, 3) * fraction
            picture[horizon:] = rng.uniform(0, 0.7, 3)
            for _ in range(3):
                centre = (int(rng.uniform(0, width)), horizon + int(rng.uniform(-0.1, 0.1) * height))
                axes = (int(rng.uniform(30, 120)), int(rng.uniform(20, 60)))
                cv2.ellipse(picture, centre, axes, 0, 180, 360, rng.uniform(0, 0.8, 3).tolist(), -1)
            sun = (int(rng.uniform(0, width)), int(rng.uniform(10, horizon / 2)))
            cv2.circle(picture, sun, int(rng.uniform(8, 25)), rng.uniform(0.6, 1, 3).tolist(), -1)
            picture = cv2.GaussianBlur(picture, (0, 0), 1.2) + rng.normal(0, 0.03, picture.shape)
        elif kind == 4:  # cluttered rectangles and discs, shaded
            picture = np.full((height, width, 3), rng.uniform(0, 1, 3))
            for _ in range(40):
                colour = rng.uniform(0, 1, 3).tolist()
                if rng.uniform() < 0.5:
                    corner = rng.integers(0, [width, height], 2)
                    opposite = corner + rng.integers(5, 80, 2)
                    cv2.rectangle(picture, tuple(map(int, corner)), tuple(map(int, opposite)), colour, -1)
                else:
                    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
                    cv2.circle(picture, centre, int(rng.integers(4, 50)), colour, -1)
            picture = cv2.GaussianBlur(picture * np.linspace(0.6, 1.1, width)[None, :, None], (0, 0), 0.8)
        else:  # colour bars over a chequerboard
            picture = np.zeros((height, width, 3))
            for bar, colour in enumerate(rng.uniform(0, 1, (8, 3))):
                picture[:, bar * width // 8 : (bar + 1) * width // 8] = colour
            squares = ((np.indices((height, width)) // int(rng.integers(8, 32))).sum(0) % 2)[..., None]
            board = squares * rng.uniform(0, 1, 3) + (1 - squares) * rng.uniform(0, 1, 3)
            picture[height // 2 :] = board[height // 2 :]
        # Through 8 bits, as the pictures were saved when the thresholds were chosen.
        yield f"synthetic-{index:02d}", (np.clip(picture, 0, 1) * 255).round().astype(np.float32) / 255


def tuning_pictures() -> Iterator[tuple[str, np.ndarray]]:
    minifigures = open_dataset("minifigs:n=40,seed=4", resolution=256)
    for index in range(len(minifigures)):
        yield f"minifig-4-{index}", minifigures[index].image
    yield from synthetic_pictures()
    for path in sorted(EXAMPLE_PHOTOS.glob("*.jpg")):
        yield path.name, load_image(path).pixels


def main() -> None:
    torch.set_num_threads(1)
    faded = imgzoo.load("colorize", precision="fp32")
    plain = imgzoo.load("colorize", precision="fp32")
    plain.task.domain_statistics = None
    task = faded.task
    worse = 0
    print(f"{'picture':18s} {'score':>6s}  gray psnr/ssim   unfaded         faded")
    for name, truth in tuning_pictures():
        gray = task.degrade(truth)
        with torch.no_grad():
            features = task.domain_features(faded.backend.inference_models, task.preprocess(gray))
        score = float(task.domain_fade(features)[0])
        measured = []
        for pipeline in (plain, faded):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = np.asarray(pipeline(gray), dtype=np.float32)
            measured.append(task.image_metrics(_rgb(result), _rgb(truth), _rgb(gray)))
        unfaded, final = measured
        bad = final["psnr"] < final["psnr_gray"] - 0.1 or final["ssim"] < final["ssim_gray"] - 0.005
        worse += bad
        print(
            f"{name:18s} {score:6.2f}  {final['psnr_gray']:6.2f} {final['ssim_gray']:.3f}  "
            f"{unfaded['psnr']:6.2f} {unfaded['ssim']:.3f}  {final['psnr']:6.2f} {final['ssim']:.3f}"
            f"{'  worse' if bad else ''}"
        )
    print(f"worse than the gray input after the fade: {worse}")


if __name__ == "__main__":
    main()
