"""`HuggingFaceDataset`: training data from Hugging Face ``datasets`` (``pip install
"imgzoo[hfds]"``), read as a map-style dataset.

``hfds:PATH_OR_NAME[,split=train,image=COLUMN,target=COLUMN]`` names a ``save_to_disk``
folder, a folder of parquet files, or a Hub dataset (read from the local cache when offline:
``HF_DATASETS_OFFLINE=1``). A ``datasets`` table is memory-mapped Arrow with random access
by row, so the trainer's seeded order (and with it the exact resume) holds as for a folder.

The picture columns are ``datasets.Image`` features: ``image`` (default: the first Image
column) and, for paired data, ``target``. A named input of the task is the column of its name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgzoo.data._files import UnreadableImage, decode_pixels, read_pixels
from imgzoo.data.base import Sample
from imgzoo.errors import DataError, MissingExtraError

__all__ = ["HuggingFaceDataset"]


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingExtraError("datasets", extra="hfds", purpose="for hfds: data") from None
    return datasets


class HuggingFaceDataset:
    """The rows of a Hugging Face dataset's ``split`` as samples (see the module docstring)."""

    def __init__(
        self,
        source: str,
        *,
        split: str = "train",
        image: str | None = None,
        target: str | None = None,
        inputs: Collection[str] = (),
    ) -> None:
        datasets = _datasets()
        self.source, self.split = source, split
        path = Path(source).expanduser()
        try:
            if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(path))
            elif path.is_dir():
                loaded = datasets.load_dataset("parquet", data_dir=str(path))
            else:
                loaded = datasets.load_dataset(source)
        except (FileNotFoundError, ValueError, ConnectionError) as error:
            raise DataError(f"cannot open hfds:{source}: {error}", path=path) from error
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"hfds:{source} has no split {split!r}: it has {', '.join(loaded)}")
            loaded = loaded[split]
        pictures = [name for name, kind in loaded.features.items() if isinstance(kind, datasets.Image)]
        self.image = image or (pictures[0] if pictures else "")
        self.target = target
        self.inputs = tuple(inputs)
        for role, column in (("image", self.image), ("target", target), *((n, n) for n in self.inputs)):
            if column is None:
                continue
            if column not in pictures:
                raise DataError(
                    f"hfds:{source}: the {role} column {column!r} is not a datasets.Image column "
                    f"(Image columns: {', '.join(pictures) or 'none'})"
                )
        # Decoded by hand: the dataset hands back the encoded bytes, as stored.
        self.table = loaded.cast_column(self.image, datasets.Image(decode=False))
        for column in (target, *self.inputs):
            if column is not None:
                self.table = self.table.cast_column(column, datasets.Image(decode=False))
        if len(self.table) == 0:
            raise DataError(f"hfds:{source} (split {split!r}) holds no rows")

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} rows")
        row = self.table[int(index) % len(self)]
        where = f"hfds:{self.source}[{index}]"
        image = _decode(row[self.image], f"{where}.{self.image}", rgb=True)
        target = (
            None if self.target is None else _decode(row[self.target], f"{where}.{self.target}", rgb=True)
        )
        named = {name: _decode(row[name], f"{where}.{name}", rgb=False) for name in self.inputs}
        return Sample(image=image, target=target, name=str(index), inputs=named)

    def __iter__(self) -> Iterator[Sample]:
        return (self[index] for index in range(len(self)))

    def __repr__(self) -> str:
        return f"HuggingFaceDataset({self.source!r}, split={self.split!r}, {len(self)} rows)"


def _decode(cell: Any, source: str, *, rgb: bool) -> np.ndarray:
    """A ``datasets.Image`` cell, undecoded: its bytes, or the file it names."""
    if cell.get("bytes"):
        return decode_pixels(cell["bytes"], source, rgb=rgb)
    if cell.get("path"):
        try:
            return read_pixels(Path(cell["path"]), rgb=rgb)
        except UnreadableImage as error:
            raise DataError(f"{source}: {error}") from error
    raise DataError(f"{source} holds no picture")
