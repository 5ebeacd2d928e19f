"""Where results are written, decided and checked before any model work starts.

A run that writes results must never replace one of its own inputs, never replace a file the
user did not ask to replace, and never write two results to one file. All of that is known from
the paths alone, so it is checked up front, and a refused run has written nothing. Importing this
module imports neither torch nor OpenCV.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from imgzoo.errors import OutputError, OutputExistsError, ZooError
from imgzoo.files import remove_abandoned
from imgzoo.formats import WRITABLE_SUFFIXES

__all__ = ["WRITABLE_SUFFIXES", "plan_outputs", "same_file"]


def plan_outputs(
    output: str | os.PathLike[str],
    sources: Sequence[Path | None],
    names: Sequence[str],
    *,
    overwrite: bool,
    overwrite_hint: str,
    suffixes: Sequence[str] = WRITABLE_SUFFIXES,
    also_read: Sequence[Path] = (),
    shard: tuple[int, int] = (0, 1),
) -> list[Path]:
    """The file each result goes to, one per input, or an OutputError saying why the run is refused.

    ``output`` names one file (it has an image suffix and is not a folder) for a single input,
    otherwise a folder where input ``i`` is written as ``names[i]``. ``sources`` are the input
    files (None for an input that is not a file). ``overwrite_hint`` tells the user how to allow
    replacing existing files (``--overwrite``, ``overwrite=True``). ``suffixes``: the formats the
    results can be written in (``.npy`` alone for a task whose outputs are float maps).
    ``also_read``: other files the run reads (a task's named inputs, such as masks), which no
    result may replace either. ``shard``: (index, count) when ``count`` processes share the run,
    process ``index`` writing ``targets[index::count]``; every target is planned, so that two
    processes never share one, but only this process's are checked against existing files,
    since the others may be writing theirs already. Once the run is allowed, the temporary files
    that killed runs left beside its targets are removed.
    """
    text = os.fspath(output)
    if "\x00" in text:
        raise OutputError(f"the output path {text!r} contains a NUL byte: give a valid path", path=text)
    index, count = shard
    try:
        targets = _targets(text, names, suffixes)
        _refuse_shared_targets(targets, sources)
        own = targets[index::count]
        _refuse_replacing(own, [*sources, *also_read], overwrite=overwrite, overwrite_hint=overwrite_hint)
    except ZooError:  # OutputExistsError is an OSError too
        raise
    except OSError as error:  # a name too long, a folder that cannot be read, ...
        raise OutputError(f"cannot write to {text}: {error.strerror or error}", path=text) from error
    for folder in sorted({target.parent for target in own}):
        remove_abandoned(folder)  # the temporary files of earlier runs that were killed mid-write
    return targets


def _targets(output: str, names: Sequence[str], suffixes: Sequence[str]) -> list[Path]:
    path = Path(output)
    names_a_folder = output.endswith(("/", os.sep)) or path.is_dir() or not path.suffix
    if names_a_folder:
        if path.exists() and not path.is_dir():
            raise OutputError(f"the output folder {path} is a file: give a folder, or a new name", path=path)
        return [path / name for name in names]
    if path.suffix.lower() not in suffixes:
        raise OutputError(
            f"cannot write {path.suffix} files: use one of {', '.join(suffixes)}, "
            f"or end the output with '/' to name a folder",
            path=path,
        )
    if len(names) != 1:
        raise OutputError(
            f"the output {output} names one file, but there are {len(names)} inputs: give a folder", path=path
        )
    return [path]


def _refuse_shared_targets(targets: Sequence[Path], sources: Sequence[Path | None]) -> None:
    claimed: dict[str, Path | None] = {}
    for target, source in zip(targets, sources, strict=True):
        key = _file_key(target)
        if key in claimed:
            first = claimed[key]
            if first is not None and source is not None and same_file(first, source):
                continue  # one file given twice gives the same result twice
            raise OutputError(
                f"{_describe(first)} and {_describe(source)} would both be written to {target}: "
                "run them separately, or put them in folders and pass the folder",
                path=target,
            )
        claimed[key] = source


def _refuse_replacing(
    targets: Sequence[Path], sources: Sequence[Path | None], *, overwrite: bool, overwrite_hint: str
) -> None:
    inputs = [source for source in sources if source is not None]
    input_identities = {_identity(source) for source in inputs} - {None}
    input_locations = {source.resolve() for source in inputs}
    existing = []
    for target in targets:
        if not os.path.lexists(target):
            continue
        if target.resolve() in input_locations or _identity(target) in input_identities:
            raise OutputError(
                f"the result would replace its input {target}: choose another output file, or a folder "
                "that holds none of the inputs",
                path=target,
            )
        if target.is_dir():
            raise OutputError(f"cannot write a result to {target}: it is a folder", path=target)
        existing.append(target)
    if existing and not overwrite:
        if len(existing) == 1:
            raise OutputExistsError(
                f"{existing[0]} already exists: pass {overwrite_hint} to replace it, "
                "or choose another output",
                path=existing[0],
            )
        raise OutputExistsError(
            f"{existing[0]} and {len(existing) - 1} other output(s) already exist: pass {overwrite_hint} "
            "to replace them, or choose another output",
            path=existing[0],
        )


def _file_key(path: Path) -> str:
    """A key under which two names of one future file are equal. Windows' and macOS's usual file
    systems ignore case, so ``Cat.png`` and ``cat.png`` are one file there."""
    key = os.path.normcase(os.path.abspath(path))  # normcase folds case on Windows
    return key.casefold() if sys.platform == "darwin" else key


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) that a path leads to, which also tells hard links and symlinks apart."""
    try:
        status = path.stat()
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


def same_file(first: Path, second: Path) -> bool:
    """Whether the two paths lead to one file (False when either does not exist)."""
    try:
        return os.path.samefile(first, second)
    except (OSError, ValueError):
        return False


def _describe(source: Path | None) -> str:
    return str(source) if source is not None else "an input that is not a file"
