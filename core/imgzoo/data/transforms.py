"""`PairTransform`: sizing and geometric augmentation, applied alike to every picture of a sample.

A paired sample only stays a valid example if all its pictures move together: every random draw
is made once per sample and applied to ``image``, ``target`` and each of ``inputs``, scaled by
each one's size (a 2x super-resolution's target moves twice as many pixels as its input).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import cv2
import numpy as np

from imgzoo.data.base import Sample
from imgzoo.errors import DataError

MAX_ROTATION_DEGREES = 5.0
MAX_SCALE_CHANGE = 0.05  # ±5 %

CropPolicy = Literal["resize", "native"]
"""How a training crop relates to the picture: ``"resize"`` shrinks (or enlarges) the whole
picture to the working resolution first; ``"native"`` cuts the crop out of the full-resolution
picture."""
CROP_POLICIES: tuple[CropPolicy, ...] = ("resize", "native")


class PairTransform:
    """Bring a sample's target side to ``size`` x ``size``, every picture of it moving alike.

    The target side is ``target``, or ``image`` when there is none (a single-image dataset,
    whose task derives its input in ``make_pair``). ``image`` is ``scale`` times smaller per
    side than ``target`` (the task's `Task.scale`), and each of ``inputs`` is the size of one
    of them; a picture ``k`` times smaller gets a crop ``size / k`` wide at the same place.
    Geometry is drawn once, on the pixel grid of ``image``, so crops line up exactly.

    In order: size the pictures (``crop="resize"``, the default: resize so the target side's
    short side is ``jitter_resize`` or ``size``, keeping the aspect ratio; ``crop="native"``:
    keep the full resolution, only enlarging a picture whose short side is below the crop);
    if ``affine``, rotate by up to ±5° and scale by up to ±5 % about the centre (borders
    reflected); crop, at a random place if ``random_crop``, else the centre; if ``flip``,
    mirror left-right half the time. pix2pix's jitter is ``jitter_resize=286, random_crop=True``
    for ``size=256``. With no random option set this is the deterministic evaluation
    transform (see :meth:`for_evaluation`). Every random draw comes from ``rng``, so a seeded
    generator reproduces the output exactly. ``target`` may be None.
    """

    def __init__(
        self,
        size: int,
        *,
        random_crop: bool = False,
        flip: bool = False,
        affine: bool = False,
        jitter_resize: int | None = None,
        crop: CropPolicy = "resize",
        scale: int = 1,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, not {size}")
        if crop not in CROP_POLICIES:
            raise ValueError(f"crop must be one of {', '.join(map(repr, CROP_POLICIES))}, not {crop!r}")
        if jitter_resize is not None and crop == "native":
            raise ValueError("jitter_resize resizes before cropping: it cannot go with crop='native'")
        if jitter_resize is not None and jitter_resize < size:
            raise ValueError(f"jitter_resize ({jitter_resize}) must be at least size ({size}) to crop from")
        if scale < 1:
            raise ValueError(f"scale must be a positive whole number, not {scale}")
        self.size = size
        self.random_crop = random_crop
        self.flip = flip
        self.affine = affine
        self.jitter_resize = jitter_resize
        self.crop = crop
        self.scale = scale

    def for_evaluation(self) -> PairTransform:
        """The same sizing (crop policy and scale) with nothing random: a centre crop."""
        return PairTransform(self.size, crop=self.crop, scale=self.scale)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        factors = self._factors(sample)
        sides = [sample.image] if sample.target is None else [sample.image, sample.target]
        pictures = [*sides, *sample.inputs.values()]
        target_factor = factors[1] if sample.target is not None else 1
        if self.size % target_factor:
            raise DataError(
                f"sample {sample.name!r}: a {self.size}-pixel crop of the target has no whole-pixel "
                f"input crop at scale {target_factor}: use an image_size divisible by {target_factor}"
            )
        crop = self.size // target_factor  # on the grid of ``image``

        height, width = self._sized_grid(sample.image.shape[:2], crop, target_factor)
        pictures = [
            _resize(picture, (height * k, width * k)) for picture, k in zip(pictures, factors, strict=True)
        ]
        if self.affine:
            pictures = _random_affine(pictures, rng)
        top, left = self._crop_origin((height, width), crop, rng)
        pictures = [
            picture[top * k : (top + crop) * k, left * k : (left + crop) * k]
            for picture, k in zip(pictures, factors, strict=True)
        ]
        if self.flip and rng.random() < 0.5:
            pictures = [picture[:, ::-1] for picture in pictures]

        # Views with negative strides (the flip) cannot become torch tensors: make real copies.
        pictures = [np.ascontiguousarray(picture, dtype=np.float32) for picture in pictures]
        image, rest = pictures[0], pictures[1:]
        target = rest.pop(0) if sample.target is not None else None
        return dataclasses.replace(
            sample, image=image, target=target, inputs=dict(zip(sample.inputs, rest, strict=True))
        )

    def _factors(self, sample: Sample) -> list[int]:
        """How many times larger than ``image`` each picture is, per side (image, target, inputs),
        or DataError naming the sample and the sizes when one disagrees with ``scale``."""
        image_size = sample.image.shape[:2]
        target_size = (image_size[0] * self.scale, image_size[1] * self.scale)
        if sample.target is not None and sample.target.shape[:2] != target_size:
            expected = (
                "paired images must be the same size"
                if self.scale == 1
                else f"the target must be {self.scale} times larger per side (the task's scale)"
            )
            raise DataError(
                f"sample {sample.name!r}: image is {_size(sample.image)} but target is "
                f"{_size(sample.target)}; {expected}"
            )
        factors = [1] if sample.target is None else [1, self.scale]
        for name, picture in sample.inputs.items():
            if picture.shape[:2] == image_size:
                factors.append(1)
            elif picture.shape[:2] == target_size:
                factors.append(self.scale)
            else:
                raise DataError(
                    f"sample {sample.name!r}: input {name!r} is {_size(picture)}, but it must be the "
                    f"size of the image ({_size(sample.image)}) or of the target "
                    f"({target_size[1]}x{target_size[0]}, scale {self.scale})"
                )
        return factors

    def _sized_grid(self, shape: tuple[int, ...], crop: int, target_factor: int) -> tuple[int, int]:
        """(height, width) that ``image`` is resized to before the crop (its own when it stays)."""
        height, width = shape[0], shape[1]
        if self.crop == "native":
            # Enlarging a too-small picture, like the resize policy does, rather than padding it:
            # padding would teach the model reflected borders as if they were content.
            return (height, width) if min(height, width) >= crop else _short_side_size(height, width, crop)
        short_side = max(crop, round((self.jitter_resize or self.size) / target_factor))
        return _short_side_size(height, width, short_side)

    def _crop_origin(self, grid: tuple[int, int], crop: int, rng: np.random.Generator) -> tuple[int, int]:
        height, width = grid
        if self.random_crop:
            return int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
        return (height - crop) // 2, (width - crop) // 2

    def __repr__(self) -> str:
        return (
            f"PairTransform({self.size}, random_crop={self.random_crop}, flip={self.flip}, "
            f"affine={self.affine}, jitter_resize={self.jitter_resize}, crop={self.crop!r}, "
            f"scale={self.scale})"
        )


def resize_short_side(pixels: np.ndarray, short_side: int) -> np.ndarray:
    """Resize HxW(xC) ``pixels`` so that the shorter side is ``short_side``, keeping the aspect."""
    height, width = pixels.shape[:2]
    return _resize(pixels, _short_side_size(height, width, short_side))


def _short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side ``short_side`` and the aspect ratio kept."""
    if height <= width:
        return short_side, max(short_side, round(width * short_side / height))
    return max(short_side, round(height * short_side / width)), short_side


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``pixels`` at (height, width) ``size``; the same array when it already is."""
    height, width = pixels.shape[:2]
    if (height, width) == size:
        return pixels
    # Area averaging avoids aliasing when shrinking; it degenerates to nearest when enlarging.
    interpolation = cv2.INTER_AREA if min(size) < min(height, width) else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (size[1], size[0]), interpolation=interpolation)
    return _keep_channel_axis(resized, pixels)


def _random_affine(pictures: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    angle = rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES)
    scale = 1.0 + rng.uniform(-MAX_SCALE_CHANGE, MAX_SCALE_CHANGE)
    return [_rotate_about_centre(picture, angle, scale) for picture in pictures]


def _rotate_about_centre(picture: np.ndarray, angle: float, scale: float) -> np.ndarray:
    # Each picture turns about its own centre pixel: the same point of the scene at any size,
    # so pictures of different sizes stay aligned.
    height, width = picture.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    # Reflected borders keep the corners image-like instead of black wedges the model would learn.
    warped = cv2.warpAffine(
        picture, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    return _keep_channel_axis(warped, picture)


def _keep_channel_axis(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing axis of size 1; put it back so HxWx1 stays HxWx1."""
    return result[..., np.newaxis] if result.ndim == original.ndim - 1 else result


def _size(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"
