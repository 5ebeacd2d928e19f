"""Edge maps as edges2photo reads them: black lines on a white background, like pix2pix's
edges2shoes and edges2handbags datasets.

:func:`extract_edges` makes the training inputs from photos and, with the task's
``extract_edges`` option, turns a photo into an edge map at inference, so both see the same
kind of lines. It is Canny with thresholds set from the image's median brightness (so one
setting suits dark and bright pictures), then optional thinning and removal of specks.

pix2pix's own edge maps came from HED, a network, and were thinned with MATLAB's ``bwmorph``.
OpenCV's thinning lives in ``cv2.ximgproc``, which the ``opencv-python`` wheel does not ship, so
this module carries its own small Zhang-Suen thinning in numpy. Canny lines are one pixel wide
already except at corners and junctions, so thinning only trims those; it matters more for
edge maps made some other way.

numpy and OpenCV only: importing this module does not import torch.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from imgzoo import InvalidImageError, luma

__all__ = ["DEFAULT_MIN_COMPONENT", "DEFAULT_SIGMA", "edge_map_issue", "extract_edges", "median_thresholds"]

DEFAULT_SIGMA = 0.33
"""Half-width of the Canny hysteresis band around the median (the usual "auto Canny" value)."""

DEFAULT_MIN_COMPONENT = 8
"""Edge fragments with fewer pixels than this are dropped: texture and noise, not outlines."""

_BLUR_KERNEL = (3, 3)  # light: takes sensor noise off without rounding away the outlines
_BACKGROUND = 0.8  # luma from which a pixel counts as paper (white) in an edge map
_INK = 0.2  # luma up to which a pixel counts as a line (black)


def extract_edges(
    image: np.ndarray,
    *,
    thin: bool = True,
    min_component: int = DEFAULT_MIN_COMPONENT,
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """Black edges on white from a photo.

    ``image``: HxW, HxWx1 or HxWx3 (RGB), uint8 or float in [0, 1]. It is lightly blurred, then
    Canny finds the edges with hysteresis thresholds ``(1 - sigma) * median`` and
    ``(1 + sigma) * median`` of its luma (see :func:`median_thresholds`). ``thin`` reduces the lines to one
    pixel (Zhang-Suen); ``min_component`` drops 8-connected fragments with fewer pixels (0 or 1
    keeps everything).

    Returns float32 in {0, 1}: 0 on edges, 1 elsewhere, HxW for a 2-D input and HxWx1 otherwise.
    The result depends only on the pixels (no randomness).
    """
    if min_component < 0:
        raise ValueError(f"min_component must be >= 0, got {min_component}")
    if not 0 <= sigma < 1:
        raise ValueError(f"sigma must be in [0, 1), got {sigma}")
    pixels = _as_uint8(image)
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    lower, upper = median_thresholds(cv2.GaussianBlur(gray, _BLUR_KERNEL, 0), sigma=sigma)
    # Canny on the colour image: OpenCV follows the strongest channel at each pixel, so an
    # outline between two colours of equal brightness (beige on light blue) is still found.
    edges = cv2.Canny(cv2.GaussianBlur(pixels, _BLUR_KERNEL, 0), lower, upper) > 0
    if thin:
        edges = _thin(edges)
    if min_component > 1:
        edges = _drop_small_components(edges, min_component)
    paper = np.where(edges, np.float32(0), np.float32(1))
    return paper if image.ndim == 2 else paper[..., None]


def median_thresholds(gray: np.ndarray, *, sigma: float = DEFAULT_SIGMA) -> tuple[float, float]:
    """Canny's (lower, upper) thresholds for an 8-bit gray image: ``sigma`` either side of its median.

    Tying them to the median makes a dim picture and a bright one of the same scene give
    similar edges, which fixed thresholds do not.
    """
    median = float(np.median(gray))
    return max(0.0, (1.0 - sigma) * median), (1.0 + sigma) * median


def edge_map_issue(image: np.ndarray) -> str | None:
    """Why ``image`` (HxWxC float in [0, 1]) does not look like an edge map, or None when it does.

    An edge map is mostly white paper with some dark lines. This catches the two common
    mistakes: a photo passed as is (mostly mid-tones), and inverted edges (white on black, as
    ``cv2.Canny`` returns them). A sketch with shading may be flagged too; the verdict is only
    ever used for a warning.
    """
    gray = _gray(np.asarray(image, dtype=np.float32))
    # Fixed wording (no percentages): Python shows a warning once per message, so a batch of
    # photos gives one warning, not one per image.
    if (gray >= _BACKGROUND).mean() >= 0.5:
        return None
    if (gray <= _INK).mean() >= 0.5:
        return "it is mostly dark, but edge maps are black lines on white: is it inverted (1 - image)?"
    return (
        "it is mostly mid-tones, like a photo, not black lines on white: "
        "pass extract_edges=True to draw its edges first"
    )


# ── helpers ──────────────────────────────────────────────────────────────────────────────────


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """A validated HxW(xC) uint8 or [0, 1] float array as contiguous uint8, HxW or HxWx3."""
    array = np.asarray(image)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3))):
        raise InvalidImageError(f"extract_edges takes an HxW, HxWx1 or HxWx3 image, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidImageError(f"extract_edges got an empty image (shape {array.shape})")
    if array.dtype == np.uint8:
        values = array
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InvalidImageError("extract_edges got NaN or infinite values")
        values = np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise InvalidImageError(f"extract_edges takes uint8 or float pixels in [0, 1], not {array.dtype}")
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    return np.ascontiguousarray(values)


def _gray(image: np.ndarray) -> np.ndarray:
    """HxW luma of an HxW, HxWx1 or HxWx3 image."""
    return image if image.ndim == 2 else luma(image)[..., 0]


def _thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (1984) of a boolean mask, each pass vectorised over the whole image.

    Two sub-passes alternate until nothing changes: the first peels pixels off south-east
    boundaries and north-west corners, the second the opposite ones, and a pixel is only
    peeled if that keeps its neighbourhood connected and it is not the end of a line.
    """
    image = np.pad(mask, 1).astype(np.uint8)
    for _ in range(max(image.shape)):  # every productive pass peels a layer: bounded by the size
        changed = False
        for first_pass in (True, False):
            # The 8 neighbours clockwise from north: p2 (N), p3 (NE), ..., p9 (NW).
            c = image[1:-1, 1:-1]
            p2, p3, p4 = image[:-2, 1:-1], image[:-2, 2:], image[1:-1, 2:]
            p5, p6, p7 = image[2:, 2:], image[2:, 1:-1], image[2:, :-2]
            p8, p9 = image[1:-1, :-2], image[:-2, :-2]
            ring = (p2, p3, p4, p5, p6, p7, p8, p9, p2)
            neighbours = sum(ring[:8], np.zeros_like(c))  # B(p1): how many neighbours are set
            # A(p1): how many 0 -> 1 steps going once round the ring
            transitions = sum(((a == 0) & (b == 1)).astype(np.uint8) for a, b in itertools.pairwise(ring))
            if first_pass:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            peel = (c == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if peel.any():
                c[peel] = 0  # c is a view: this edits ``image``
                changed = True
        if not changed:
            break
    return image[1:-1, 1:-1].astype(bool)


def _drop_small_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False  # label 0 is the background
    return keep[labels]
