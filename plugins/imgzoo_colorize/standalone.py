"""``colorize`` as one torch module, uint8 picture in and uint8 RGB out, for a standalone export
(``imgzoo export colorize --standalone``): :meth:`ColorizeTask.preprocess`, ``forward`` and
:meth:`ColorizeTask.postprocess` written in tensor operations that trace with the picture's
height, width and channels left free.

Each step reproduces its OpenCV counterpart in :mod:`imgzoo_colorize.color`:

    picture ─▶ resized to the working size (by area when shrinking, else bilinear; rounded to
    8 bits as cv2.resize does) ─▶ its L ─▶ ``ColorizeTask.forward`` (the network, the mirrored
    pass and the confidence) ─▶ the guided filter's chroma models ─▶ resized to the picture's size
    ─▶ evaluated with the picture's own 8-bit L ─▶ 8-bit Lab to RGB.

OpenCV computes a picture's L by interpolating in tables of its own, which differ from the
formula by up to 0.2 (of 100); the guided filter follows lightness steps finer than that, so the
graph does not recompute L: it looks up OpenCV's own L of each of the 2^24 8-bit colours (both
pictures it reads L from are 8-bit, the working-size one rounded as cv2.resize leaves it), in
two tables made at export by OpenCV itself (80 MiB of the file). Lab to RGB is OpenCV's float
formula (D65 white, sRGB gamma, its constants), within a level of its 8-bit conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from imgzoo_colorize.color import AB_SCALE, lightness

if TYPE_CHECKING:
    from imgzoo_colorize.task import ColorizeTask

__all__ = ["StandaloneColorize", "lab_to_rgb", "lightness_tables", "resized"]

# OpenCV's sRGB (D65) matrix from XYZ and its white point (imgproc's color_lab.cpp).
_XYZ_TO_RGB = (
    (3.240479, -1.53715, -0.498535),
    (-0.969256, 1.875991, 0.041556),
    (0.055648, -0.204043, 1.057311),
)
_WHITE_X, _WHITE_Z = 0.950456, 1.088754
_LINEAR_THRESHOLD = 0.008856  # where Lab's cube root gives way to a line
_LINEAR_SLOPE = 7.787
_LINEAR_L = 903.3


@lru_cache(maxsize=1)
def lightness_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's L of every 8-bit RGB colour, indexed by ``R * 65536 + G * 256 + B``: from its
    float conversion of the colour / 255 (float32: the guided filter follows steps of L as
    small as 1/500, so even 16 bits would move results by levels), and from its 8-bit one
    (uint8, L * 255 / 100 rounded)."""
    levels = np.arange(256, dtype=np.uint8)
    colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(4096, 4096, 3)
    floating = lightness(colours.astype(np.float32) * np.float32(1 / 255)).reshape(-1)
    eight_bit = cv2.cvtColor(colours, cv2.COLOR_RGB2Lab)[..., 0].reshape(-1)
    return torch.from_numpy(floating), torch.from_numpy(np.ascontiguousarray(eight_bit))


def _colour_index(rgb: torch.Tensor) -> torch.Tensor:
    """``R * 65536 + G * 256 + B`` of ...x3 8-bit values (as floats), the last axis dropped."""
    values = rgb.long()
    return values[..., 0] * 65536 + values[..., 1] * 256 + values[..., 2]


def _srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear light to sRGB, clipped to [0, 1] first, as OpenCV does."""
    clipped = linear.clamp(0, 1)
    return torch.where(clipped > 0.0031308, 1.055 * clipped.pow(1 / 2.4) - 0.055, 12.92 * clipped)


def lab_to_rgb(light: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L (0..100), a and b to ...x3 sRGB in [0, 1], as OpenCV converts float Lab."""
    fy = torch.where(
        light <= _LINEAR_THRESHOLD * _LINEAR_L,
        _LINEAR_SLOPE * light / _LINEAR_L + 16 / 116,
        (light + 16) / 116,
    )
    fx, fz = fy + a / 500, fy - b / 200
    threshold = _LINEAR_SLOPE * _LINEAR_THRESHOLD + 16 / 116

    def inverse_f(f: torch.Tensor) -> torch.Tensor:
        return torch.where(f > threshold, f.pow(3), (f - 16 / 116) / _LINEAR_SLOPE)

    y = torch.where(light <= _LINEAR_THRESHOLD * _LINEAR_L, light / _LINEAR_L, fy.pow(3))
    xyz = torch.stack([inverse_f(fx) * _WHITE_X, y, inverse_f(fz) * _WHITE_Z], dim=-1)
    matrix = torch.tensor(_XYZ_TO_RGB, dtype=xyz.dtype)
    return _srgb(xyz @ matrix.T)


def _positions(start: int | torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """``torch.arange(start, end)`` in float64, ``end`` a size tensor that the graph keeps free."""
    return torch.arange(start, end, dtype=torch.float64)  # type: ignore[call-overload]


def _area_weights(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """target x source matrix that resizes one axis by area, as cv2.INTER_AREA shrinks: each
    target pixel the mean of the source it covers. Sizes are 0-d int64 tensors, so that the
    graph keeps them free."""
    scale = source.double() / target.double()
    rows = _positions(0, target)[:, None]
    columns = _positions(0, source)[None, :]
    # The overlap of [column, column + 1) with the row's cell [row, row + 1) * scale.
    overlap = torch.minimum(columns + 1, (rows + 1) * scale) - torch.maximum(columns, rows * scale)
    return (overlap.clamp(min=0) / scale).float()


def _linear_taps(
    target: torch.Tensor, source: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(left, right, weight of right) of each target pixel along one axis, bilinear with
    half-pixel centres and edges replicated, as cv2.INTER_LINEAR and cv2.warpAffine sample."""
    scale = source.double() / target.double()
    position = ((_positions(0, target) + 0.5) * scale - 0.5).clamp(min=0)
    left = position.floor()
    last = source - 1
    fraction = torch.where(left >= last, torch.zeros_like(position), position - left)
    left = left.long().clamp(max=last)
    return left, (left + 1).clamp(max=last), fraction


def _bilinear(
    image: torch.Tensor, height: torch.Tensor, width: torch.Tensor, *, eight_bit: bool
) -> torch.Tensor:
    """An HxWxC picture resized bilinearly; ``eight_bit``: in OpenCV's fixed point for 8-bit
    pictures (weights in 2048ths, the vertical pass with its truncations), so that the rounded
    result matches cv2.resize's but for a level at a few pixels of the first and last rows."""
    left, right, fraction = _linear_taps(width, _size(image, 1))
    top, bottom, down = _linear_taps(height, _size(image, 0))
    if not eight_bit:
        fraction, down = fraction.float()[:, None], down.float()[:, None, None]
        across = image.index_select(1, left) * (1 - fraction) + image.index_select(1, right) * fraction
        return across.index_select(0, top) * (1 - down) + across.index_select(0, bottom) * down
    fraction, down = (fraction * 2048).round()[:, None], (down * 2048).round()[:, None, None]
    across = (
        image.double().index_select(1, left) * (2048 - fraction)
        + image.double().index_select(1, right) * fraction
    )
    upper = ((2048 - down) * (across.index_select(0, top) / 16).floor() / 65536).floor()
    lower = (down * (across.index_select(0, bottom) / 16).floor() / 65536).floor()
    return ((upper + lower + 2) / 4).floor().float()


def resized(
    image: torch.Tensor, height: torch.Tensor, width: torch.Tensor, *, eight_bit: bool
) -> torch.Tensor:
    """An HxWxC float picture resized to ``height`` x ``width`` as :meth:`ColorizeTask.preprocess`
    and :func:`~imgzoo_colorize.color.colorize` resize: by area when both sides shrink (or
    stay), else bilinear. ``eight_bit``: the values are an 8-bit picture's, and so is the result."""
    source_height, source_width = _size(image, 0), _size(image, 1)
    area = (height <= source_height) & (width <= source_width)
    # Two matrix products, columns first (C x H x W @ W x w), then rows (h x H @ H x w x C).
    across = image.permute(2, 0, 1) @ _area_weights(width, source_width).T
    by_area = torch.tensordot(_area_weights(height, source_height), across.permute(1, 2, 0), dims=1)
    if eight_bit:
        by_area = by_area.round()
    return torch.where(area, by_area, _bilinear(image, height, width, eight_bit=eight_bit))


def _size(tensor: torch.Tensor, axis: int) -> torch.Tensor:
    """The length of one axis as a 0-d int64 tensor, which a trace keeps as an operation."""
    return torch._shape_as_tensor(tensor)[axis]


def _working_size(
    height: torch.Tensor, width: torch.Tensor, long_side: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~imgzoo_colorize.color.working_size` on size tensors (float64 as Python's, and
    ``round`` to even as Python's)."""
    scale = long_side / torch.maximum(height, width).double()

    def side(length: torch.Tensor) -> torch.Tensor:
        return ((length.double() * scale / 8).round() * 8).clamp(min=8).long()

    return side(height), side(width)


def _box_mean(values: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean over (2 radius + 1)^2 windows of an NxCxHxW tensor, borders reflected with the
    edge pixel repeated (OpenCV's BORDER_REFLECT, as ``chroma_models`` filters)."""
    if radius == 0:
        return values

    def reflected(length: torch.Tensor) -> torch.Tensor:
        index = _positions(-radius, length + radius).long().remainder(2 * length)
        return torch.where(index >= length, 2 * length - 1 - index, index)

    padded = values.index_select(2, reflected(_size(values, 2))).index_select(3, reflected(_size(values, 3)))
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


class StandaloneColorize(torch.nn.Module):
    """``run("colorize", picture)`` for one uint8 HxWxC picture (C = 1 or 3): uint8 HxWx3 RGB."""

    float_lightness: torch.Tensor
    eight_bit_lightness: torch.Tensor

    def __init__(self, task: ColorizeTask, models: Mapping[str, torch.nn.Module]) -> None:
        super().__init__()
        self.task = task
        self.models = torch.nn.ModuleDict(dict(models))
        floating, eight_bit = lightness_tables()
        self.register_buffer("float_lightness", floating)
        self.register_buffer("eight_bit_lightness", eight_bit)

    def forward(self, picture: torch.Tensor) -> torch.Tensor:
        config = self.task.config
        height, width = _size(picture, 0), _size(picture, 1)
        # Gray repeats into R = G = B by broadcasting, so one graph takes 1 and 3 channels.
        rgb = picture.float() * torch.ones(3)

        # preprocess: the picture at the working size, rounded to 8 bits as cv2.resize leaves it.
        small_height, small_width = _working_size(height, width, config.image_size)
        small = resized(rgb, small_height, small_width, eight_bit=True)
        encoded = self.float_lightness[_colour_index(small)] * (1 / 50) - 1

        # forward: the task's own, so that what it does to the chroma is in the graph as it is in
        # run(): the mirrored pass and the confidence that scales the chroma (and any fade applied
        # where the chroma is scaled, as the out-of-domain fade will be). A fade applied after
        # forward instead belongs here, as one call on ``lab[1:3]`` (the fourth channel is the domain score).
        lab = self.task.forward(dict(self.models.items()), encoded[None, None])[0].float()
        ab = lab[1:3] * AB_SCALE

        # postprocess: the chroma's linear models of lightness (``chroma_models``)...
        if config.chroma_upsampling == "guided":
            guide = ((lab[:1] + 1) * 0.5)[None]
            chroma = ab[None]

            def mean(values: torch.Tensor) -> torch.Tensor:
                return _box_mean(values, config.guide_radius)

            mean_light = mean(guide)
            variance = mean(guide * guide) - mean_light * mean_light
            mean_ab = mean(chroma)
            slope = (mean(chroma * guide) - mean_light * mean_ab) / (variance + config.guide_eps)
            models = mean(torch.cat([slope, mean_ab - slope * mean_light], dim=1))[0]
        else:
            models = torch.cat([torch.zeros_like(ab), ab])
        # ...at the picture's size, evaluated with its own 8-bit L (``colorize``).
        local = resized(models.permute(1, 2, 0), height, width, eight_bit=False)
        light = self.eight_bit_lightness[_colour_index(rgb)].float()
        chroma = (light[..., None] * local[..., :2] / 255 + local[..., 2:] + 128).round().clamp(0, 255)
        colour = lab_to_rgb(light * (100 / 255), chroma[..., 0] - 128, chroma[..., 1] - 128)
        return (colour * 255).round().to(torch.uint8)
