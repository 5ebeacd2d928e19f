"""`PairTransform`: sizing and geometric augmentation, applied identically to input and target.

A paired sample only stays a valid example if both sides move together: every random draw is
made once per sample and applied to ``image`` and ``target`` alike.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from imgzoo.data.base import Sample
from imgzoo.errors import DataError

MAX_ROTATION_DEGREES = 5.0
MAX_SCALE_CHANGE = 0.05  # ±5 %


class PairTransform:
    """Bring a sample to ``size`` x ``size``, augmenting image and target the same way.

    In order: resize so the short side is ``jitter_resize`` (or ``size``), keeping the aspect
    ratio; if ``affine``, rotate by up to ±5° and scale by up to ±5 % about the centre (borders
    reflected); crop ``size`` x ``size``, at a random place if ``random_crop``, else the centre;
    if ``flip``, mirror left-right half the time. pix2pix's jitter is ``jitter_resize=286,
    random_crop=True`` for ``size=256``. With no option set this is the deterministic
    evaluation transform. Every random draw comes from ``rng``, so a seeded generator
    reproduces the output exactly. ``target`` may be None.
    """

    def __init__(
        self,
        size: int,
        *,
        random_crop: bool = False,
        flip: bool = False,
        affine: bool = False,
        jitter_resize: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, not {size}")
        if jitter_resize is not None and jitter_resize < size:
            raise ValueError(f"jitter_resize ({jitter_resize}) must be at least size ({size}) to crop from")
        self.size = size
        self.random_crop = random_crop
        self.flip = flip
        self.affine = affine
        self.jitter_resize = jitter_resize

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image, target = sample.image, sample.target
        if target is not None and target.shape[:2] != image.shape[:2]:
            raise DataError(
                f"sample {sample.name!r}: image is {image.shape[1]}x{image.shape[0]} but target is "
                f"{target.shape[1]}x{target.shape[0]}; paired images must be the same size"
            )
        sides = [image] if target is None else [image, target]

        sides = [resize_short_side(side, self.jitter_resize or self.size) for side in sides]
        if self.affine:
            sides = _random_affine(sides, rng)
        top, left = self._crop_origin(sides[0].shape[:2], rng)
        sides = [side[top : top + self.size, left : left + self.size] for side in sides]
        if self.flip and rng.random() < 0.5:
            sides = [side[:, ::-1] for side in sides]

        # Views with negative strides (the flip) cannot become torch tensors: make real copies.
        sides = [np.ascontiguousarray(side, dtype=np.float32) for side in sides]
        return dataclasses.replace(sample, image=sides[0], target=sides[1] if target is not None else None)

    def _crop_origin(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, int]:
        height, width = shape
        if self.random_crop:
            return int(rng.integers(0, height - self.size + 1)), int(rng.integers(0, width - self.size + 1))
        return (height - self.size) // 2, (width - self.size) // 2

    def __repr__(self) -> str:
        return (
            f"PairTransform({self.size}, random_crop={self.random_crop}, flip={self.flip}, "
            f"affine={self.affine}, jitter_resize={self.jitter_resize})"
        )


def resize_short_side(pixels: np.ndarray, short_side: int) -> np.ndarray:
    """Resize HxW(xC) ``pixels`` so that the shorter side is ``short_side``, keeping the aspect."""
    height, width = pixels.shape[:2]
    if min(height, width) == short_side:
        return pixels
    if height <= width:
        new_height, new_width = short_side, max(short_side, round(width * short_side / height))
    else:
        new_height, new_width = max(short_side, round(height * short_side / width)), short_side
    # Area averaging avoids aliasing when shrinking; it degenerates to nearest when enlarging.
    interpolation = cv2.INTER_AREA if short_side < min(height, width) else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (new_width, new_height), interpolation=interpolation)
    return _keep_channel_axis(resized, pixels)


def _random_affine(sides: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    height, width = sides[0].shape[:2]
    angle = rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES)
    scale = 1.0 + rng.uniform(-MAX_SCALE_CHANGE, MAX_SCALE_CHANGE)
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    # Reflected borders keep the corners image-like instead of black wedges the model would learn.
    return [
        _keep_channel_axis(
            cv2.warpAffine(
                side, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
            ),
            side,
        )
        for side in sides
    ]


def _keep_channel_axis(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing axis of size 1; put it back so HxWx1 stays HxWx1."""
    return result[..., np.newaxis] if result.ndim == original.ndim - 1 else result
