"""Paired data, input and wanted output: `PairedFolders` (``A/`` + ``B/``) and `AlignedPairs`
(pix2pix's side-by-side files).

Both check every file's size at construction, from its header (a few bytes; formats without a
header reader are decoded), so inconsistent data fails before training starts, not hours into it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from imgzoo.data._files import (
    ImageSearch,
    SkipsUnreadableFiles,
    find_images,
    read_pixels,
    read_rgb,
    relative_name,
)
from imgzoo.data.base import Sample
from imgzoo.errors import DataError, InvalidImageError

_MAX_NAMES_LISTED = 5


class PairedFolders(SkipsUnreadableFiles):
    """Inputs in ``root/A/``, targets in ``root/B/``, partners matched by relative path without
    extension (``A/x.png`` pairs with ``B/x.jpg``). Every other folder of ``root``
    named in ``inputs`` (``root/mask/``, say; every folder when ``inputs`` is None) holds one
    more named picture per pair, matched the same way; other folders are left alone.

    ``B/`` images are ``scale`` times larger per side than their ``A/`` partners (the task's
    `Task.scale`: 1, the same size, unless the task enlarges); a named folder's images are the
    size of their ``A/`` or of their ``B/`` partner. Raises DataError at construction when a
    folder is missing or empty, a file has no partner, or sizes disagree (read from file
    headers). Samples carry ``image`` (from A, RGB), ``target`` (from B, RGB), ``inputs`` (one
    array per named folder, keyed by its name, HxWx1 for gray files) and ``name`` (the A file's
    relative path).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, scale: int = 1, inputs: Collection[str] | None = None
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.scale = scale
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
        #: The named folders read besides A/ and B/, in the order of their names. Folders the
        #: task does not name (thumbnails, an unzipper's __MACOSX/) are none of its business.
        self.input_names: list[str] = sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir()
            and entry.name not in ("A", "B", "__MACOSX")
            and not entry.name.startswith(".")
            and (inputs is None or entry.name in inputs)
        )
        folders = {name: _by_key(find_images(self.root / name)) for name in ("A", "B", *self.input_names)}
        self._require_partners(folders)
        #: Per sample, its file in every folder: ``{"A": ..., "B": ..., "mask": ...}``.
        self.files: list[dict[str, Path]] = [
            {name: files[key] for name, files in folders.items()} for key in sorted(folders["A"])
        ]
        self._require_sizes()

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        files = self.files[index]
        image, target = read_rgb(files["A"]), read_rgb(files["B"])
        inputs = {name: read_pixels(files[name]) for name in self.input_names}
        sizes = {name: _array_size(pixels) for name, pixels in {"A": image, "B": target, **inputs}.items()}
        # Headers agreed, so a disagreement here means the decoder changed a size (an EXIF rotation).
        problem = self._size_problem(files, sizes)
        if problem:
            raise DataError(problem, path=self.root)
        return Sample(
            image=image, target=target, name=relative_name(files["A"], self.root / "A"), inputs=inputs
        )

    def _require_partners(self, folders: dict[str, dict[str, Path]]) -> None:
        inputs = folders["A"]
        problems = []
        for folder, files in folders.items():
            if folder != "A":
                problems += _lonely_files(self.root, ("A", inputs), (folder, files))
                problems += _lonely_files(self.root, (folder, files), ("A", inputs))
        if problems:
            named = ""
            if self.input_names:
                named = f"; every folder beside A/ and B/ ({', '.join(self.input_names)}) is a named input"
            raise DataError(
                "; ".join(problems) + " (partners share a relative path and name, extension aside: "
                f"A/x.png pairs with B/x.jpg{named})",
                path=self.root,
            )
        if not inputs:
            raise DataError(
                f"no image pairs found in {self.root / 'A'} and {self.root / 'B'}", path=self.root
            )

    def _require_sizes(self) -> None:
        problems = []
        for files in self.files:
            problem = self._size_problem(files, {name: _image_size(path) for name, path in files.items()})
            if problem:
                problems.append(problem)
        if problems:
            more = f" ({len(problems) - 1} more sample(s) disagree too)" if len(problems) > 1 else ""
            raise DataError(problems[0] + more, path=self.root)

    def _size_problem(
        self, files: Mapping[str, Path], sizes: Mapping[str, tuple[int, int] | None]
    ) -> str | None:
        """What is wrong with one sample's sizes ``{folder: (width, height)}``, or None.

        An undecodable file has no size; it is skipped (and reported) when reached.
        """
        input_size, target_size = sizes["A"], sizes["B"]
        if input_size is None or target_size is None:
            return None
        expected = (input_size[0] * self.scale, input_size[1] * self.scale)
        if target_size != expected:
            if self.scale == 1:
                rule = "paired images must be the same size"
            else:
                rule = (
                    f"B/ images must be {self.scale} times larger per side than their A/ partners "
                    f"(the task's scale), here {_format_size(expected)}"
                )
            return (
                f"{files['A']} is {_format_size(input_size)} but its partner {files['B']} is "
                f"{_format_size(target_size)}: {rule}"
            )
        for name in self.input_names:
            size = sizes[name]
            if size is not None and size not in (input_size, target_size):
                sides = f"the size of its A/ partner ({_format_size(input_size)})"
                if self.scale != 1:
                    sides += f" or of its B/ partner ({_format_size(target_size)})"
                return f"{files[name]} is {_format_size(size)}, but a file in {name}/ must be {sides}"
        return None

    def __repr__(self) -> str:
        named = f", inputs {', '.join(self.input_names)}" if self.input_names else ""
        scale = f", scale {self.scale}" if self.scale != 1 else ""
        return f"PairedFolders({str(self.root)!r}, {len(self)} pairs{scale}{named})"


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


def _lonely_files(
    root: Path, side: tuple[str, dict[str, Path]], partner_side: tuple[str, dict[str, Path]]
) -> list[str]:
    """A problem, when files of one folder have no partner in another (else none)."""
    (folder, files), (partner_folder, partners) = side, partner_side
    lonely = [relative_name(files[key], root) for key in sorted(files) if key not in partners]
    if not lonely:
        return []
    return [f"{len(lonely)} file(s) in {folder}/ have no partner in {partner_folder}/: {_listing(lonely)}"]


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
    """``(width, height)`` as shown, from the header; None when the file is unreadable."""
    from imgzoo.images import declared_size

    try:
        height, width = declared_size(path, source=str(path))
    except InvalidImageError:
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


def _format_size(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def _array_size(pixels: np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of HxWxC ``pixels``, the order file headers use."""
    return int(pixels.shape[1]), int(pixels.shape[0])


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_LISTED])
    hidden = len(names) - _MAX_NAMES_LISTED
    return f"{shown} and {hidden} more" if hidden > 0 else shown
