"""Finding image files in folders, and reading them without letting one bad file stop training."""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgzoo.data.base import Sample
from imgzoo.errors import DataError, InvalidImageError
from imgzoo.formats import READABLE_SUFFIXES

IMAGE_EXTENSIONS: tuple[str, ...] = READABLE_SUFFIXES


@dataclass(frozen=True)
class ImageSearch:
    """What a recursive search of one folder found."""

    root: Path
    files: list[Path]
    ignored: int  # visible files that are not images: another suffix, or not a regular file
    extensions: tuple[str, ...]
    skipped_folders: list[tuple[Path, str]] = field(default_factory=list)  # (folder, why) not searched

    def require_images(self) -> list[Path]:
        """The files found, or a DataError saying what was searched for and what was not used."""
        if not self.files:
            others = f"; {self.ignored} other file(s) were ignored" if self.ignored else ""
            if self.skipped_folders:
                others += f"; {len(self.skipped_folders)} folder(s) could not be searched"
            raise DataError(
                f"no images found under {self.root} (searched recursively for "
                f"{', '.join(self.extensions)}){others}",
                path=self.root,
            )
        return self.files


def find_images(root: str | os.PathLike[str], extensions: Iterable[str] = IMAGE_EXTENSIONS) -> ImageSearch:
    """Every image under ``root``, recursively, sorted; hidden files and folders are skipped, and
    so are FIFOs and devices, whatever their names.

    Suffixes match case-insensitively (``.JPG`` is a ``.jpg``). Linked folders are followed once:
    a link back into a folder already searched (a loop, or a second way into one) is not. Folders
    that cannot be read or are not followed are listed in ``skipped_folders`` and named in a
    warning. Raises DataError when ``root`` is missing or is not a folder.
    """
    root = Path(root).expanduser()
    wanted = tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)
    if not root.exists():
        raise DataError(f"data folder {root} does not exist: expected a folder of images", path=root)
    if not root.is_dir():
        raise DataError(f"{root} is a file: expected a folder of images", path=root)

    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    ignored = 0
    searched: set[tuple[int, int]] = set()
    # Linked folders wait until every real one is searched, so that a link into a folder that
    # is also reached directly is the one left out, whatever the order of the listing.
    pending: list[Path] = [root]
    linked: list[Path] = []
    while pending or linked:
        folder = pending.pop() if pending else linked.pop()
        try:
            status = folder.stat()
            identity = (status.st_dev, status.st_ino)
            if identity in searched:
                skipped.append((folder, "links to a folder searched already (a loop?)"))
                continue
            searched.add(identity)
            with os.scandir(folder) as entries:
                listing = list(entries)
        except OSError as error:
            skipped.append((folder, f"cannot be read: {error.strerror or error}"))
            continue
        for entry in listing:
            if entry.name.startswith("."):  # .git, .ipynb_checkpoints, macOS ._ files and the like
                continue
            try:
                is_folder = entry.is_dir()
            except OSError as error:  # a link that cannot be followed, e.g. one to itself
                skipped.append(
                    (Path(entry.path), f"is a link that cannot be followed: {error.strerror or error}")
                )
                continue
            if is_folder:
                (linked if entry.is_symlink() else pending).append(Path(entry.path))
            elif os.path.splitext(entry.name)[1].lower() in wanted and _is_regular_file(entry):
                files.append(Path(entry.path))
            else:  # another suffix, or a FIFO or a device named like an image: reading it could hang
                ignored += 1
    # Sorting on the relative POSIX path keeps the order identical across platforms and runs.
    files.sort(key=lambda path: path.relative_to(root).as_posix())
    skipped.sort()
    if skipped:
        details = "; ".join(f"{folder} {why}" for folder, why in skipped)
        warnings.warn(
            f"{len(skipped)} folder(s) under {root} were not searched for images: {details}",
            stacklevel=2,
        )
    return ImageSearch(root=root, files=files, ignored=ignored, extensions=wanted, skipped_folders=skipped)


def _is_regular_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()  # follows a link; False for FIFOs, sockets and devices
    except OSError:
        return False


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with forward slashes: a sample's stable, portable name."""
    return path.relative_to(root).as_posix()


class UnreadableImage(Exception):
    """Internal signal: ``path`` could not be decoded (never escapes this package)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def read_rgb(path: Path) -> np.ndarray:
    """Decode ``path`` as HxWx3 float32 RGB in [0, 1]; raises UnreadableImage on failure."""
    return read_pixels(path, rgb=True)


def read_pixels(path: Path, *, rgb: bool = False) -> np.ndarray:
    """Decode ``path`` as HxWxC float32 in [0, 1], C = 1 for a gray file (a mask) else 3, or
    always 3 with ``rgb``; alpha is dropped. Raises UnreadableImage on failure."""
    from imgzoo.images import load_image

    try:
        return _sample_pixels(load_image(path), rgb=rgb)
    except (InvalidImageError, OSError) as error:
        raise UnreadableImage(path, str(error)) from error


def decode_pixels(data: bytes, source: str, *, rgb: bool = False) -> np.ndarray:
    """:func:`read_pixels` of encoded bytes (a shard's member, a dataset's cell), named
    ``source`` in errors; a picture that cannot be decoded is a DataError."""
    from imgzoo.images import decode_image

    try:
        return _sample_pixels(decode_image(data, source), rgb=rgb)
    except InvalidImageError as error:
        raise DataError(str(error)) from error


def _sample_pixels(image: Any, *, rgb: bool) -> np.ndarray:
    return np.ascontiguousarray(image.rgb() if rgb else image.pixels, dtype=np.float32)


class SkipsUnreadableFiles(ABC):
    """Base of the file-backed datasets: an unreadable file is passed over, never a crash.

    When item ``i`` cannot be decoded, the next readable item (``i+1``, ``i+2``, ..., wrapping
    around) is returned instead, so an epoch always completes and the choice is deterministic.
    ``skipped`` counts every time a bad item was passed over, and ``bad_files`` lists each bad
    file once (a warning is issued the first time). If no item at all can be read, DataError.
    Counters live in each process: with DataLoader workers, each worker keeps its own.
    """

    root: Path

    def __init__(self) -> None:
        self.skipped = 0
        self.bad_files: list[Path] = []
        self._bad_indices: set[int] = set()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _load(self, index: int) -> Sample:
        """Decode item ``index``; raise UnreadableImage when one of its files cannot be read."""

    def __getitem__(self, index: int) -> Sample:
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for a dataset of {count} items")
        index %= count
        for offset in range(count):
            candidate = (index + offset) % count
            if candidate in self._bad_indices:
                self.skipped += 1
                continue
            try:
                return self._load(candidate)
            except UnreadableImage as error:
                self._mark_bad(candidate, error)
                self.skipped += 1
        raise DataError(
            f"none of the {count} samples under {self.root} could be read "
            f"(first failure: {self.bad_files[0]}); check the files are valid images",
            path=self.root,
        )

    def __iter__(self) -> Iterator[Sample]:
        return (self[index] for index in range(len(self)))

    def _mark_bad(self, index: int, error: UnreadableImage) -> None:
        self._bad_indices.add(index)
        if error.path not in self.bad_files:
            self.bad_files.append(error.path)
            # Decoder messages usually name the file already; say it only once.
            detail = error.reason if str(error.path) in error.reason else f"{error.path}: {error.reason}"
            warnings.warn(f"skipping an unreadable image; {detail}", stacklevel=3)
