"""`ImageFolder`: every image under a folder, recursively, one sample each."""

from __future__ import annotations

import os
from collections.abc import Iterable

from imgzoo.data._files import IMAGE_EXTENSIONS, SkipsUnreadableFiles, find_images, read_rgb, relative_name
from imgzoo.data.base import Sample


class ImageFolder(SkipsUnreadableFiles):
    """The images under ``root`` (recursively, sorted, hidden files and folders skipped).

    Samples carry ``image`` (HxWx3 float32 RGB) and ``name`` (the path relative to ``root``).
    A missing or empty folder raises DataError at construction; an unreadable file is skipped
    when reached (see ``skipped`` and ``bad_files``).
    """

    def __init__(self, root: str | os.PathLike[str], *, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> None:
        super().__init__()
        search = find_images(root, extensions)
        self.root = search.root
        self.files = search.require_images()

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        path = self.files[index]
        return Sample(image=read_rgb(path), name=relative_name(path, self.root))

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images)"
