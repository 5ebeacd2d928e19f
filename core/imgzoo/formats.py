"""The file formats imgzoo reads images from and writes results to, in one table.

Importing this module imports neither torch nor OpenCV, so that paths can be checked (``imgzoo
run``'s outputs, a data folder's files) before anything heavy loads.
"""

from __future__ import annotations

import os

__all__ = [
    "MAP_SUFFIX",
    "MAX_PIXELS",
    "READABLE_SUFFIXES",
    "RESULT_SUFFIX",
    "SIXTEEN_BIT_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "pixel_limit_for_opencv",
]

# A run holds several full-size copies of an image at once (decoded, as float32, the result, the
# encoded output): colorize, the hungriest built-in task, peaks at about 72 bytes per pixel. So
# 2**26 pixels (8192x8192) need about 5 GB, which a laptop has; a larger limit would let a small
# file (a 16000x16000 PNG of one colour is under 1 MB) exhaust the memory instead of being refused.
MAX_PIXELS: int = 2**26
"""Largest height*width accepted (a decompression-bomb guard); env var IMGZOO_MAX_PIXELS overrides it."""


def pixel_limit_for_opencv() -> None:
    """Give OpenCV's decoder imgzoo's pixel limit, where the user has not set one for it.

    OpenCV reads ``OPENCV_IO_MAX_IMAGE_PIXELS`` once, when it loads, and defaults to 2**30: set
    before that, it refuses at decoding the formats whose size imgzoo cannot read from the
    header first (TIFF, PNM, ...), instead of decoding them far past imgzoo's limit.
    """
    configured = os.environ.get("IMGZOO_MAX_PIXELS", "").strip()
    limit = configured if configured.isdigit() and int(configured) > 0 else str(MAX_PIXELS)
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", limit)


# suffix: (results can be written in it, it keeps 16-bit samples). Everywhere else OpenCV
# would silently clip uint16 to 255.
_IMAGE_FORMATS: dict[str, tuple[bool, bool]] = {
    ".jpg": (True, False),
    ".jpeg": (True, False),
    ".png": (True, True),
    ".bmp": (True, False),
    ".webp": (True, False),
    ".tif": (True, True),
    ".tiff": (True, True),
}

READABLE_SUFFIXES: tuple[str, ...] = tuple(_IMAGE_FORMATS)
"""Image files that data folders and ``imgzoo run`` read."""
WRITABLE_SUFFIXES: tuple[str, ...] = tuple(
    suffix for suffix, (writable, _) in _IMAGE_FORMATS.items() if writable
)
"""Image files that results can be written to."""
SIXTEEN_BIT_SUFFIXES: tuple[str, ...] = tuple(suffix for suffix, (_, wide) in _IMAGE_FORMATS.items() if wide)
"""Formats that keep uint16 pixels as 16-bit."""
RESULT_SUFFIX = ".png"
"""What an image result is written as when only a folder is given: lossless, and 16-bit capable."""
MAP_SUFFIX = ".npy"
"""The one format that keeps a float map's every value and channel."""
