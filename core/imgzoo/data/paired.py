"""Paired data, input and wanted output: `PairedFolders` (``A/`` + ``B/``) and `AlignedPairs`
(pix2pix's side-by-side files).

Both check every file's size at construction, from its header (a few bytes; formats without a
header reader are decoded), so inconsistent data fails before training starts, not hours into it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from imgzoo.data._files import (
    ImageSearch,
    SkipsUnreadableFiles,
    UnreadableImage,
    find_images,
    read_rgb,
    relative_name,
)
from imgzoo.data._imagesize import read_image_size
from imgzoo.data.base import Sample
from imgzoo.errors import DataError

_MAX_NAMES_LISTED = 5


class PairedFolders(SkipsUnreadableFiles):
    """Inputs in ``root/A/``, targets in ``root/B/``, partners matched by relative path without
    extension (``A/x.png`` pairs with ``B/x.jpg``).

    Raises DataError at construction when a folder is missing or empty, a file has no partner,
    or partners differ in size (read from file headers). Samples carry ``image`` (from A),
    ``target`` (from B) and ``name`` (the A file's relative path).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(
                f"paired data folder {self.root} does not exist or is not a folder", path=self.root
            )
        for side in ("A", "B"):
            if not (self.root / side).is_dir():
                raise DataError(
                    f"paired data needs {self.root / 'A'} (inputs) and {self.root / 'B'} (targets); "
                    f"{self.root / side} is missing",
                    path=self.root,
                )
        inputs = _by_key(find_images(self.root / "A"))
        targets = _by_key(find_images(self.root / "B"))
        self._require_partners(inputs, targets)
        self.pairs: list[tuple[Path, Path]] = [(inputs[key], targets[key]) for key in sorted(inputs)]
        self._require_equal_sizes()

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int) -> Sample:
        input_path, target_path = self.pairs[index]
        image, target = read_rgb(input_path), read_rgb(target_path)
        if image.shape != target.shape:
            # Headers agreed, so the decoder changed a size (an EXIF rotation, say).
            mismatch = _size_mismatch(input_path, image.shape[1::-1], target_path, target.shape[1::-1])
            raise DataError(mismatch, path=self.root)
        return Sample(image=image, target=target, name=relative_name(input_path, self.root / "A"))

    def _require_partners(self, inputs: dict[str, Path], targets: dict[str, Path]) -> None:
        problems = []
        for side, files, partners, partner_side in (("A", inputs, targets, "B"), ("B", targets, inputs, "A")):
            lonely = [relative_name(files[key], self.root) for key in sorted(files) if key not in partners]
            if lonely:
                problems.append(
                    f"{len(lonely)} file(s) in {side}/ have no partner in {partner_side}/: {_listing(lonely)}"
                )
        if problems:
            raise DataError(
                "; ".join(problems) + " (partners share a relative path and name, extension aside: "
                "A/x.png pairs with B/x.jpg)",
                path=self.root,
            )
        if not inputs:
            raise DataError(
                f"no image pairs found in {self.root / 'A'} and {self.root / 'B'}", path=self.root
            )

    def _require_equal_sizes(self) -> None:
        mismatches = []
        for input_path, target_path in self.pairs:
            input_size, target_size = _image_size(input_path), _image_size(target_path)
            # An undecodable file has no size; it is skipped (and reported) when reached.
            if input_size and target_size and input_size != target_size:
                mismatches.append(_size_mismatch(input_path, input_size, target_path, target_size))
        if mismatches:
            more = f" ({len(mismatches) - 1} more pair(s) differ too)" if len(mismatches) > 1 else ""
            raise DataError(mismatches[0] + more, path=self.root)

    def __repr__(self) -> str:
        return f"PairedFolders({str(self.root)!r}, {len(self)} pairs)"


class AlignedPairs(SkipsUnreadableFiles):
    """pix2pix's aligned format: each image holds input and target side by side.

    Every image under ``root`` is split at its middle column: left half A, right half B.
    ``direction="AtoB"`` makes A the input (``image``) and B the ``target``; ``"BtoA"`` swaps.
    An odd width, or a file not wider than it is tall, raises DataError at construction.
    """

    def __init__(self, root: str | os.PathLike[str], *, direction: Literal["AtoB", "BtoA"] = "AtoB") -> None:
        super().__init__()
        if direction not in ("AtoB", "BtoA"):
            raise DataError(f"direction must be 'AtoB' or 'BtoA', not {direction!r}", path=root)
        search = find_images(root)
        self.root = search.root
        self.files = search.require_images()
        self.direction = direction
        for path in self.files:
            size = _image_size(path)
            if size:
                _require_side_by_side(path, *size)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        path = self.files[index]
        pixels = read_rgb(path)
        height, width = pixels.shape[:2]
        _require_side_by_side(path, width, height)
        left, right = pixels[:, : width // 2].copy(), pixels[:, width // 2 :].copy()
        image, target = (left, right) if self.direction == "AtoB" else (right, left)
        return Sample(image=image, target=target, name=relative_name(path, self.root))

    def __repr__(self) -> str:
        return f"AlignedPairs({str(self.root)!r}, {len(self)} images, {self.direction})"


def _by_key(search: ImageSearch) -> dict[str, Path]:
    """The images of a folder keyed by relative path without extension; two files with one key
    (``x.png`` and ``x.jpg``) would make pairing ambiguous."""
    by_key: dict[str, Path] = {}
    for path in search.files:
        key = relative_name(path.with_suffix(""), search.root)
        if key in by_key:
            raise DataError(
                f"{by_key[key]} and {path} would both be paired as {key!r}: keep one of them",
                path=search.root,
            )
        by_key[key] = path
    return by_key


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the header, else by decoding; None when the file is unreadable."""
    size = read_image_size(path)
    if size is not None:
        return size
    try:
        height, width = read_rgb(path).shape[:2]
    except UnreadableImage:
        return None
    return width, height


def _require_side_by_side(path: Path, width: int, height: int) -> None:
    if width % 2 or width <= height:
        raise DataError(
            f"{path} is {width}x{height}, which cannot hold input and target side by side: "
            "aligned data needs an even width greater than the height (typically width = 2 x height, "
            "e.g. 512x256); use folder:PATH or paired:PATH for other layouts",
            path=path,
        )


def _size_mismatch(
    input_path: Path, input_size: Sequence[int], target_path: Path, target_size: Sequence[int]
) -> str:
    return (
        f"{input_path} is {input_size[0]}x{input_size[1]} but its partner {target_path} is "
        f"{target_size[0]}x{target_size[1]}: paired images must be the same size"
    )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_LISTED])
    hidden = len(names) - _MAX_NAMES_LISTED
    return f"{shown} and {hidden} more" if hidden > 0 else shown
