"""`WebDatasetShards`: training data in WebDataset tar shards, read as a map-style dataset.

WebDataset's own reader streams shards in order, with a shuffle buffer: its order depends on
the buffer and the workers, and a resume cannot find its place in it. imgzoo reads the same
files differently, so that its guarantees (a step's batches are a pure function of the seed and
the step; a resume is exact) hold as for a folder: each shard is **indexed once** (one pass over
its tar headers, which seeks past the members' data: about 0.13 s for a shard of 1000 paired
samples on a 2-core CPU, read back from the cached index in about 4 ms),
the index cached beside the shard as ``SHARD.tar.idx.json`` (or only in memory where that
folder is read-only), and a sample is then read by offset. The trainer's seeded order does the
rest; under DDP each process draws only from its own shards (``shard_ids`` and
:class:`imgzoo.training.batches.BatchPlan`).

A sample is the members that share a key (the name up to the first dot): its picture is its
``png``, ``jpg``/``jpeg`` or ``webp`` member; a paired sample has ``input.EXT`` and
``target.EXT`` instead; a named input of the task is ``NAME.EXT`` (``mask.png``).

Shards are local files or URLs (``https://``, ``s3://``, ``gs://``... whatever ``fsspec`` opens):
a URL is downloaded once into ``IMGZOO_CACHE/shards/`` and read from there, as reading by
offset needs a seekable file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgzoo.data._files import decode_pixels
from imgzoo.data.base import Sample
from imgzoo.errors import DataError, MissingExtraError

__all__ = ["INDEX_SUFFIX", "PICTURE_EXTENSIONS", "WebDatasetShards", "expand_braces"]

PICTURE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
INDEX_SUFFIX = ".idx.json"
_INDEX_VERSION = 1
_BRACES = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"(\d+)\.\.(\d+)")

Member = tuple[int, int]  # offset of the data in the tar file, and its size


def expand_braces(pattern: str) -> list[str]:
    """``shards/train-{000..002}.tar`` as its three names (``{a,b}`` lists too), in order."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, body, tail = pattern[: match.start()], match.group(1), pattern[match.end() :]
    numbers = _RANGE.fullmatch(body)
    if numbers:
        low, high = numbers.groups()
        width = len(low) if low.startswith("0") else 0
        choices = [str(n).zfill(width) for n in range(int(low), int(high) + 1)]
    else:
        choices = body.split(",")
    return [name for choice in choices for name in expand_braces(head + choice + tail)]


def _is_url(name: str) -> bool:
    return re.match(r"[a-zA-Z][a-zA-Z0-9+.-]+://", name) is not None and not name.startswith("file://")


def _local_copy(url: str) -> Path:
    """The shard at ``url``, downloaded once into the cache (read by offset, it must be seekable)."""
    from imgzoo.weights import cache_dir

    target = cache_dir() / "shards" / hashlib.sha256(url.encode()).hexdigest()[:24] / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError("fsspec", extra="webdataset", purpose=f"to read shards from {url}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with fsspec.open(url, "rb") as source, open(partial, "wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot download shard {url}: {error}") from error
    os.replace(partial, target)
    return target


def index_shard(path: Path) -> list[tuple[str, dict[str, Member]]]:
    """The samples of the tar file ``path``, in file order: ``(key, {extension: (offset, size)})``,
    read from the cached index beside it when that is current, else built (and cached)."""
    stat = path.stat()
    cached = path.with_name(path.name + INDEX_SUFFIX)
    stamp = {"version": _INDEX_VERSION, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        found = json.loads(cached.read_text(encoding="utf-8"))
        if found.get("stamp") == stamp:
            return [
                (key, {ext: (m[0], m[1]) for ext, m in members.items()}) for key, members in found["samples"]
            ]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    samples: dict[str, dict[str, Member]] = {}
    try:
        with tarfile.open(path, "r:") as archive:
            for info in archive:
                if not info.isfile():
                    continue
                folder, _, base = info.name.rpartition("/")
                stem, dot, extension = base.partition(".")
                if not dot or base.startswith("."):
                    continue
                key = f"{folder}/{stem}" if folder else stem
                samples.setdefault(key, {})[extension.lower()] = (info.offset_data, info.size)
    except (tarfile.TarError, OSError) as error:
        raise DataError(
            f"cannot read shard {path}: {error} (is it an uncompressed tar file?)", path=path
        ) from error
    listed = list(samples.items())
    try:
        text = json.dumps({"stamp": stamp, "samples": [[key, members] for key, members in listed]})
        cached.write_text(text, encoding="utf-8")
    except OSError:
        pass  # a read-only folder: the index stays in memory
    return listed


class WebDatasetShards:
    """The samples of WebDataset tar shards (see the module docstring), indexed once.

    ``pattern``: a brace pattern (``shards/train-{000000..000099}.tar``), local or a URL.
    ``inputs``: the task's named inputs, read from members ``NAME.EXT`` of each sample.
    """

    def __init__(self, pattern: str, *, inputs: Collection[str] = ()) -> None:
        names = expand_braces(pattern)
        self.pattern = pattern
        self.inputs = tuple(inputs)
        self.shards: list[Path] = []
        for name in names:
            if _is_url(name):
                self.shards.append(_local_copy(name))
                continue
            path = Path(name.removeprefix("file://")).expanduser()
            if not path.is_file():
                raise DataError(f"shard {path} (of webdataset:{pattern}) does not exist", path=path)
            self.shards.append(path)
        self._items: list[tuple[int, str, dict[str, Member]]] = []
        for number, path in enumerate(self.shards):
            for key, members in index_shard(path):
                self._items.append((number, key, members))
        if not self._items:
            raise DataError(f"webdataset:{pattern} holds no samples")
        self._files: dict[int, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._items)

    def shard_ids(self) -> np.ndarray:
        """The shard (its number in ``shards``) of every item."""
        return np.array([number for number, _, _ in self._items], dtype=np.int64)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        number, key, members = self._items[index]
        source = f"{self.shards[number]}:{key}"
        pictures: dict[str, np.ndarray] = {}
        for extension, member in sorted(members.items()):
            name, _, kind = extension.rpartition(".")
            if kind not in PICTURE_EXTENSIONS:
                continue
            pixels = self._decode(
                number, member, f"{source}.{extension}", rgb=name in ("", "input", "target")
            )
            pictures.setdefault(name, pixels)
        if "input" in pictures and "target" in pictures:
            image, target = pictures["input"], pictures["target"]
        elif "" in pictures:
            image, target = pictures[""], None
        else:
            raise DataError(
                f"sample {source} has no picture: expected a png, jpg or webp member, or input.* and target.*"
            )
        named = {name: pictures[name] for name in self.inputs if name in pictures}
        missing = [name for name in self.inputs if name not in pictures]
        if missing:
            raise DataError(f"sample {source} has no {', '.join(f'{name}.png' for name in missing)} member")
        return Sample(image=image, target=target, name=key, inputs=named)

    def __iter__(self) -> Iterator[Sample]:
        return (self[index] for index in range(len(self)))

    def _decode(self, number: int, member: Member, source: str, *, rgb: bool) -> np.ndarray:
        if self._pid != os.getpid():  # a loader worker: open its own files
            self._files, self._pid = {}, os.getpid()
        handle = self._files.get(number)
        if handle is None:
            handle = self._files[number] = open(self.shards[number], "rb")  # noqa: SIM115
        offset, size = member
        handle.seek(offset)
        return decode_pixels(handle.read(size), source, rgb=rgb)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}}

    def __repr__(self) -> str:
        return f"WebDatasetShards({self.pattern!r}, {len(self.shards)} shards, {len(self)} samples)"
