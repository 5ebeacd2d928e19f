"""`pack_shards`: a folder of pictures as WebDataset tar shards (``imgzoo data pack``).

A folder of images becomes samples ``KEY.EXT``; a paired folder (``A/``, ``B/`` and named
input folders) samples ``KEY.input.EXT``, ``KEY.target.EXT`` and ``KEY.NAME.EXT``: the layout
``webdataset:`` reads (:mod:`imgzoo.data.shards`). PNG, JPEG and WEBP files are stored as they
are, byte for byte; other formats are stored as PNG. Samples are written in the folder's sorted
order, ``shard_size`` to a shard, named ``PREFIX-000000.tar``, ``PREFIX-000001.tar``...
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from imgzoo.data.folder import ImageFolder
from imgzoo.data.paired import PairedFolders
from imgzoo.data.shards import PICTURE_EXTENSIONS, index_shard
from imgzoo.errors import ArgumentError, OutputExistsError

__all__ = ["pack_shards"]


def pack_shards(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    shard_size: int = 1000,
    prefix: str = "train",
    scale: int = 1,
    overwrite: bool = False,
) -> list[Path]:
    """Write the pictures under ``folder`` as shards in ``out``; return the shards' paths.

    Each shard is indexed as it is written (``SHARD.tar.idx.json``), so that training starts
    without a pass over them. The data spec to train on them is ``webdataset:`` followed by
    :func:`shard_pattern` of the result. ``scale``: how many times larger than its input each
    target of a paired folder is (checked, as ``paired:`` checks it)."""
    if shard_size < 1:
        raise ArgumentError(f"--shard-size must be at least 1, not {shard_size}", argument="shard_size")
    root = Path(folder).expanduser()
    samples: list[list[tuple[str, Path]]]  # per sample: (member name without key, file)
    keys: list[str]
    if (root / "A").is_dir() and (root / "B").is_dir():
        paired = PairedFolders(root, scale=scale)
        keys = [_key(files["A"].relative_to(root / "A")) for files in paired.files]
        samples = [
            [("input", files["A"]), ("target", files["B"])]
            + [(name, files[name]) for name in paired.input_names]
            for files in paired.files
        ]
    else:
        single = ImageFolder(root)
        keys = [_key(path.relative_to(root)) for path in single.files]
        samples = [[("", path)] for path in single.files]
    target = Path(out).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    count = (len(samples) + shard_size - 1) // shard_size
    paths = [target / f"{prefix}-{number:06d}.tar" for number in range(count)]
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} exists: choose another -o, or --overwrite", path=existing[0])
    for number, path in enumerate(paths):
        chunk = range(number * shard_size, min(len(samples), (number + 1) * shard_size))
        partial = path.with_name(path.name + ".part")
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive:
            for index in chunk:
                for role, file in samples[index]:
                    extension, data = _stored(file)
                    name = f"{keys[index]}.{role}.{extension}" if role else f"{keys[index]}.{extension}"
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    archive.addfile(info, io.BytesIO(data))
        os.replace(partial, path)
        index_shard(path)
    return paths


def shard_pattern(paths: list[Path]) -> str:
    """The brace pattern naming ``paths`` (as :func:`pack_shards` names them)."""
    if len(paths) == 1:
        return str(paths[0])
    first, last = paths[0].name, paths[-1].name
    prefix = first.rsplit("-", 1)[0]
    return str(paths[0].with_name(f"{prefix}-{{{first[-10:-4]}..{last[-10:-4]}}}.tar"))


def _key(relative: Path) -> str:
    # WebDataset's key ends at the first dot of a member's name: dots inside it become "_".
    stem = relative.with_suffix("").as_posix()
    return stem.replace(".", "_")


def _stored(file: Path) -> tuple[str, bytes]:
    extension = file.suffix.lower().lstrip(".")
    if extension in PICTURE_EXTENSIONS:
        return extension, file.read_bytes()
    from imgzoo.images import encode_pixels, load_image, to_uint8

    picture = load_image(file)
    return "png", encode_pixels(to_uint8(picture.pixels), ".png")
