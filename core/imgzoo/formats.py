"""The file formats imgzoo reads images from and writes results to, in one table.

Importing this module imports neither torch nor OpenCV, so that paths can be checked (``imgzoo
run``'s outputs, a data folder's files) before anything heavy loads.
"""

from __future__ import annotations

__all__ = ["MAP_SUFFIX", "READABLE_SUFFIXES", "RESULT_SUFFIX", "SIXTEEN_BIT_SUFFIXES", "WRITABLE_SUFFIXES"]

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
