"""An image's width and height read from its file header, without decoding the pixels: the one
reader of image headers (:mod:`imgzoo.images` checks pixel counts with it before decoding).

Checking that thousands of paired files agree in size must take seconds, not a full decode
of every file; these few bytes of each format's header are enough.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "HEAD_BYTES",
    "JPEG_FRAME_MARKERS",
    "PNG_SIGNATURE",
    "embedded_orientation",
    "head_size",
    "read_image_size",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEAD_BYTES = 32
"""What :func:`head_size` needs of a file's start."""
# JPEG start-of-frame markers (C4, C8 and CC share the range but are not frame headers).
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_EXIF_ORIENTATION_TAG = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def read_image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, BMP or WebP file.

    None when the format is another one, the header is malformed, or its EXIF orientation turns
    it by 90°, which a decoder may or may not apply: the caller then decodes to find out.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(HEAD_BYTES)
            if head.startswith(b"\xff\xd8"):
                file.seek(2)
                return _jpeg_size(file)
            size = head_size(head)
            if size is not None and embedded_orientation(file) in _QUARTER_TURNS:
                return None
            return size
    except (OSError, struct.error):
        pass
    return None


def head_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first :data:`HEAD_BYTES` of a PNG, BMP, GIF or WebP file, as
    stored (before any EXIF orientation); None for other formats (JPEG's size lies further in).
    Raises struct.error when the header is cut short."""
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head.startswith(b"BM"):
        return _bmp_size(head)
    if head.startswith(b"GIF8"):
        width, height = struct.unpack("<HH", head[6:10])
        return width, height
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp_size(head)
    return None


def _jpeg_size(file: BinaryIO) -> tuple[int, int] | None:
    while True:
        if file.read(1) != b"\xff":
            return None
        marker = file.read(1)
        while marker == b"\xff":  # fill bytes may pad before a marker
            marker = file.read(1)
        if not marker:
            return None
        code = marker[0]
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # standalone markers carry no length
            continue
        if code in (0xD9, 0xDA):  # end of image or pixel data before any frame header
            return None
        (length,) = struct.unpack(">H", file.read(2))
        if length < 2:
            return None
        body_length = length - 2
        if code in JPEG_FRAME_MARKERS:
            height, width = struct.unpack(">HH", file.read(body_length)[1:5])
            return width, height
        if code == 0xE1:  # APP1 comes before the frame header, so orientation is known in time
            if _exif_orientation(file.read(body_length)) in _QUARTER_TURNS:
                return None
        else:
            file.seek(body_length, 1)


def embedded_orientation(file: BinaryIO) -> int | None:
    """The EXIF orientation (1-8) stored in a PNG's eXIf chunk or a WebP's EXIF chunk, or None.

    Reads from the start of ``file``, skipping over the pixel data; raises struct.error when the
    chunks are malformed.
    """
    file.seek(0)
    head = file.read(12)
    png = head.startswith(PNG_SIGNATURE)
    if not png and not (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        return None
    file.seek(8 if png else 12)
    while len(chunk := file.read(8)) == 8:
        if png:
            length, kind = struct.unpack(">I4s", chunk)
        else:
            kind, length = struct.unpack("<4sI", chunk)
        if kind in (b"eXIf", b"EXIF"):
            return _tiff_orientation(file.read(length).removeprefix(b"Exif\x00\x00"))
        if kind == b"IEND":
            return None
        # A PNG chunk ends with a 4-byte CRC; a RIFF chunk is padded to an even length.
        file.seek(length + (4 if png else length % 2), 1)
    return None


def _exif_orientation(segment: bytes) -> int | None:
    """The EXIF orientation (1-8) in a JPEG APP1 segment, or None when there is none."""
    if not segment.startswith(b"Exif\x00\x00"):
        return None  # an XMP or other APP1 segment
    return _tiff_orientation(segment[6:])


def _tiff_orientation(tiff: bytes) -> int | None:
    """The orientation tag of an EXIF block (a little TIFF file), or None when there is none."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        raise struct.error("bad TIFF byte order in EXIF")
    (first_directory,) = struct.unpack(order + "I", tiff[4:8])
    (entries,) = struct.unpack(order + "H", tiff[first_directory : first_directory + 2])
    for number in range(entries):
        start = first_directory + 2 + 12 * number
        (tag,) = struct.unpack(order + "H", tiff[start : start + 2])
        if tag == _EXIF_ORIENTATION_TAG:
            (orientation,) = struct.unpack(order + "H", tiff[start + 8 : start + 10])
            return int(orientation)
    return None


def _bmp_size(head: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", head[14:18])
    if header_size == 12:  # the old OS/2 header stores 16-bit sizes
        width, height = struct.unpack("<HH", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
    return abs(width), abs(height)  # a negative height means rows are stored top-down


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20] == 0x2F:  # lossless
        (bits,) = struct.unpack("<I", head[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: canvas size as 24-bit "minus one" values
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    return None
