"""CIE Lab for colorization: OpenCV's float32 sRGB <-> Lab, the network's scaling, and the ab colour prior.

Conventions are OpenCV's for float32 images (D65 white, sRGB gamma): RGB in [0, 1], L in [0, 100],
a and b roughly in [-128, 127] (sRGB colours reach a in [-86, 98] and b in [-108, 95]).

The network reads L mapped to [-1, 1] (``L / 50 - 1``: zero-centred, which suits a stack of plain
ReLU convolutions without normalisation layers) and writes ab divided by 128, tanh's range.

The colour prior (for the class-rebalanced loss, after Zhang et al. 2016, "Colorful Image
Colorization") quantises the ab plane into 10x10 bins over [-130, 130)^2; the in-gamut bins are
those some sRGB colour falls into.

Everything here is numpy and OpenCV: importing it does not import torch.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "AB_BINS",
    "AB_BIN_SIZE",
    "AB_BIN_START",
    "AB_SCALE",
    "ab_bin_index",
    "as_rgb",
    "chroma_models",
    "colorize",
    "decode_lightness",
    "encode_lightness",
    "gamut_mask",
    "gray_of",
    "gray_picture",
    "lab_to_rgb",
    "lightness",
    "rebalance_weights",
    "rgb_to_lab",
    "working_size",
]

AB_SCALE = 128.0
"""ab values are divided by this for the network (tanh's output range is (-1, 1))."""

AB_BIN_SIZE = 10.0
AB_BIN_START = -130.0
AB_BINS = 26
"""The ab plane is cut into ``AB_BINS x AB_BINS`` bins of ``AB_BIN_SIZE``, starting at ``AB_BIN_START``."""

# Pixels per strip when recombining a full-size image: the Lab temporaries stay a few MB however
# large the image is, instead of two more full-size float32 copies.
_STRIP_PIXELS = 1 << 18


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1] to HxWx3 float32 Lab (OpenCV's conversion)."""
    return cv2.cvtColor(np.asarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """HxWx3 float32 Lab to HxWx3 float32 RGB, clipped to [0, 1] (out-of-gamut colours are clipped)."""
    rgb = cv2.cvtColor(np.asarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An HxWx3 float32 RGB view or copy of an HxWx3, HxWx1 or HxW image (gray is repeated)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    gray = image.reshape(image.shape[0], image.shape[1])
    return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2RGB)


def lightness(image: np.ndarray) -> np.ndarray:
    """The HxW L channel (0..100) of an HxWxC image, C = 1 (gray: R = G = B) or 3 (RGB)."""
    return rgb_to_lab(as_rgb(image))[..., 0]


def gray_of(image: np.ndarray) -> np.ndarray:
    """The HxWx1 float32 gray picture with ``image``'s own L (Lab with a = b = 0, as RGB)."""
    lab = rgb_to_lab(as_rgb(image))
    lab[..., 1:] = 0.0
    return np.ascontiguousarray(lab_to_rgb(lab)[..., 1:2])


def gray_picture(image: np.ndarray) -> np.ndarray:
    """What :func:`colorize` returns without chroma, HxWx3 in ``image``'s dtype (uint8, uint16 or
    float32): a gray picture (1 channel, or R = G = B) exactly as it is, repeated to RGB, with no
    Lab round trip to move a level or tint a pixel; a colour one as its own L with a = b = 0."""
    if image.shape[2] == 3 and not (
        np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    ):
        return colorize(image, np.zeros((1, 1, 4), dtype=np.float32))
    return np.repeat(image[..., :1], 3, axis=2)


def encode_lightness(lightness_values: np.ndarray) -> np.ndarray:
    """L in [0, 100] to the network's input range [-1, 1]."""
    return lightness_values * np.float32(1 / 50) - np.float32(1)


def decode_lightness(encoded: np.ndarray) -> np.ndarray:
    """The inverse of :func:`encode_lightness`."""
    return (encoded + np.float32(1)) * np.float32(50)


def working_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) the network runs at: the aspect ratio kept, the long side ``long_side``,
    both sides rounded to a multiple of 8 (at least 8) because the network downsamples 8x."""
    scale = long_side / max(height, width)

    def side(length: int) -> int:
        return max(8, round(length * scale / 8) * 8)

    return side(height), side(width)


def chroma_models(
    ab: np.ndarray, guide: np.ndarray | None = None, *, radius: int = 1, eps: float = 1e-3
) -> np.ndarray:
    """Per-pixel linear models of the chroma, ``ab = slope * L / 100 + offset``, on ``ab``'s own
    (low-resolution) grid: an hxwx4 float32 array of slope a, slope b, offset a, offset b.

    ``guide`` (hxw float32 L / 100 at that grid, the lightness the network saw): the models are
    He et al.'s guided filter of ``ab`` by it, fitted over (2 ``radius`` + 1)^2 windows with
    regulariser ``eps``; evaluated at full resolution with the image's own L (see
    :func:`colorize`), a chroma step follows the lightness step however much the chroma was
    upsampled, so colour stops at edges. Without a guide the slopes are 0: plain bilinear chroma.
    """
    ab = np.ascontiguousarray(ab, dtype=np.float32).reshape(ab.shape[0], ab.shape[1], 2)
    models = np.zeros((*ab.shape[:2], 4), dtype=np.float32)
    if guide is None:
        models[..., 2:] = ab
        return models
    window = (2 * radius + 1, 2 * radius + 1)

    def mean(values: np.ndarray) -> np.ndarray:
        # Reflected borders: a window at the edge averages real pixels, not a padding colour.
        return cv2.boxFilter(values, -1, window, borderType=cv2.BORDER_REFLECT).reshape(values.shape)

    light = np.ascontiguousarray(guide, dtype=np.float32)[..., None]
    mean_light = mean(light)
    variance = mean(light * light) - mean_light * mean_light
    mean_ab = mean(ab)
    slope = (mean(ab * light) - mean_light * mean_ab) / (variance + np.float32(eps))
    models[..., :2] = slope
    models[..., 2:] = mean_ab - slope * mean_light
    # Each pixel lies in many windows: averaging their models is what keeps the result smooth.
    return mean(models)


def colorize(image: np.ndarray, models: np.ndarray) -> np.ndarray:
    """Join ``image``'s own full-resolution L with the chroma of :func:`chroma_models` and return RGB.

    ``image``: HxWxC, C = 1 or 3 (colour inputs give their L only), uint8, uint16 or float32 in
    [0, 1]. ``models``: hxwx4 float32 at any resolution, resized bilinearly to HxW (by area when
    shrinking) and evaluated with the image's L. Returns a new HxWx3 RGB array: uint8 for a
    uint8 image (converted with OpenCV's 8-bit Lab, no float copy of the picture), float32
    clipped to [0, 1] otherwise. Its L equals the input's wherever the colour is in the sRGB
    gamut (to 8-bit rounding for uint8).
    """
    height, width = image.shape[:2]
    models = np.ascontiguousarray(models, dtype=np.float32)
    low_height, low_width = models.shape[:2]
    if low_height >= height and low_width >= width:  # a tiny image: whole, and by area
        models = cv2.resize(models, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, 4)
        low_height, low_width = height, width
    eight_bit = image.dtype == np.uint8
    output = np.empty((height, width, 3), dtype=np.uint8 if eight_bit else np.float32)
    # 8-bit Lab stores L * 255 / 100 and a, b + 128; float Lab stores them as they are.
    light_scale = 1 / 255 if eight_bit else 1 / 100
    depth = cv2.CV_8U if eight_bit else cv2.CV_32F
    if eight_bit:
        models = models + np.array([0, 0, 128, 128], dtype=np.float32)
    scale_x, scale_y = low_width / width, low_height / height
    rows = max(1, _STRIP_PIXELS // width)
    slope = np.empty((rows, width, 2), dtype=np.float32)
    offset = np.empty((rows, width, 2), dtype=np.float32)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strip = image[top:bottom]
        if strip.dtype == np.uint16:
            strip = strip.astype(np.float32) * np.float32(1 / 65535)
        if strip.shape[2] == 1:
            strip = cv2.cvtColor(np.ascontiguousarray(strip), cv2.COLOR_GRAY2RGB)
        lab = cv2.cvtColor(np.ascontiguousarray(strip), cv2.COLOR_RGB2Lab)
        light = cv2.extractChannel(lab, 0)
        # The strip's rows of cv2.resize(models, (width, height)), as one affine warp: pixel centres
        # map to (x + 0.5) * scale - 0.5 on the models' grid, edges replicated. (Four channels in
        # one warp cost a third of two warps of two.)
        warp = np.array(
            [[scale_x, 0, 0.5 * scale_x - 0.5], [0, scale_y, (top + 0.5) * scale_y - 0.5]], dtype=np.float32
        )
        local = cv2.warpAffine(
            models,
            warp,
            (width, bottom - top),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        count = bottom - top
        cv2.mixChannels([local], [slope[:count], offset[:count]], [0, 0, 1, 1, 2, 2, 3, 3])
        # OpenCV's kernels, whole rows at a time: an 8-bit chroma is rounded and saturated as it is stored.
        chroma = cv2.multiply(cv2.merge([light, light]), slope[:count], scale=light_scale, dtype=cv2.CV_32F)
        cv2.mixChannels([cv2.add(chroma, offset[:count], dtype=depth)], [lab], [0, 1, 1, 2])
        cv2.cvtColor(lab, cv2.COLOR_Lab2RGB, dst=output[top:bottom])  # float RGB clipped to [0, 1] by OpenCV
    return output


# ── the ab colour prior ─────────────────────────────────────────────────────────────────────


def ab_bin_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flat bin index (``a_bin * AB_BINS + b_bin``) of Lab a, b values; outliers go to the edge bins."""
    a_bin = np.clip(np.floor((a - AB_BIN_START) / AB_BIN_SIZE), 0, AB_BINS - 1).astype(np.int64)
    b_bin = np.clip(np.floor((b - AB_BIN_START) / AB_BIN_SIZE), 0, AB_BINS - 1).astype(np.int64)
    return a_bin * AB_BINS + b_bin


@lru_cache(maxsize=1)
def gamut_mask() -> np.ndarray:
    """Boolean ``AB_BINS**2`` mask of the bins that some sRGB colour falls into."""
    levels = np.linspace(0.0, 1.0, 49, dtype=np.float32)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    lab = rgb_to_lab(cube).reshape(-1, 3)
    mask = np.zeros(AB_BINS * AB_BINS, dtype=bool)
    mask[ab_bin_index(lab[:, 1], lab[:, 2])] = True
    mask.setflags(write=False)
    return mask


def rebalance_weights(counts: np.ndarray, *, mix: float, sigma: float) -> np.ndarray:
    """Per-bin loss weights that make rare colours count more (Zhang et al. 2016, eq. 3-4).

    ``counts``: how many target pixels fell into each of the ``AB_BINS**2`` bins. The empirical
    distribution is smoothed with a Gaussian of ``sigma`` (ab units), mixed with the uniform
    distribution over the in-gamut bins (weight ``mix``, their lambda), inverted, and normalised so
    that the expected weight of a pixel drawn from the smoothed distribution is 1.
    """
    if not 0 < mix <= 1:
        raise ValueError(f"mix must be in (0, 1], got {mix}")
    counts = np.asarray(counts, dtype=np.float64).reshape(AB_BINS, AB_BINS)
    total = counts.sum()
    if total <= 0:
        return np.ones(AB_BINS * AB_BINS, dtype=np.float32)
    if sigma > 0:
        # Separable Gaussian as a matrix product: G @ H @ G.T smooths along a, then along b.
        centres = np.arange(AB_BINS, dtype=np.float64)
        blur = np.exp(-((centres[:, None] - centres[None, :]) ** 2) / (2 * (sigma / AB_BIN_SIZE) ** 2))
        counts = blur @ counts @ blur.T
    prior = (counts / counts.sum()).reshape(-1)
    in_gamut = int(gamut_mask().sum())
    weights = 1.0 / ((1.0 - mix) * prior + mix / in_gamut)
    weights /= float((prior * weights).sum())
    return weights.astype(np.float32)
