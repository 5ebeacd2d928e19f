"""`open_dataset`: turn a data spec (``--data SPEC``) into a dataset.

A spec is one of::

    PATH              a folder: PairedFolders if it has A/ and B/ subfolders, else ImageFolder
    folder:PATH       ImageFolder, whatever the folder holds
    paired:PATH       PairedFolders (PATH/A/ inputs, PATH/B/ targets ``scale`` times larger,
                      any other PATH/NAME/ folder a named input of each sample)
    aligned:PATH      AlignedPairs (pix2pix's side-by-side files)
    webdataset:SHARDS WebDataset tar shards, a brace pattern (``shards/train-{000000..000099}.tar``),
                      local or a URL (``imgzoo.data.shards``; ``pip install "imgzoo[webdataset]"``
                      for URLs)
    hfds:SOURCE[,split=train,image=COLUMN,target=COLUMN]
                      a Hugging Face dataset: a save_to_disk folder, a folder of parquet files or a
                      Hub name (``imgzoo.data.hfds``; ``pip install "imgzoo[hfds]"``)
    NAME              a dataset registered by a plugin (``imgzoo.hookspecs.register_datasets``)
    NAME:k=v,k=v      the same, with options for its factory (``minifigs:n=500,seed=3``)

An existing folder wins over a registered name of the same spelling.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from imgzoo.data.base import Dataset, DatasetFactory
from imgzoo.data.folder import ImageFolder
from imgzoo.data.paired import AlignedPairs, PairedFolders
from imgzoo.errors import DataError, PluginError

_FOLDER_KINDS: dict[str, Callable[[Path, int, Collection[str] | None], Dataset]] = {
    "folder": lambda path, scale, inputs: ImageFolder(path),
    "paired": lambda path, scale, inputs: PairedFolders(path, scale=scale, inputs=inputs),
    "aligned": lambda path, scale, inputs: _aligned_pairs(path, scale),
}
#: The field of every task's config (imgzoo.TaskConfig) that a named dataset's ``resolution`` is.
RESOLUTION_FIELD = "image_size"
_NAME = re.compile(r"[A-Za-z][\w.-]*")
_OPTION_KEY = re.compile(r"[A-Za-z_]\w*")


def open_dataset(
    spec: str,
    *,
    resolution: int,
    seed: int = 0,
    scale: int = 1,
    inputs: Collection[str] | None = None,
    factories: Mapping[str, DatasetFactory] | None = None,
) -> Dataset:
    """The dataset a spec names (see the module docstring for the forms).

    Named datasets are built as ``factory(resolution=resolution, seed=seed, **options)``; a
    ``seed`` option overrides ``seed``, and option values that read as an int, a float or
    ``true``/``false`` are passed as such. Folders yield full-size images: sizing them to
    ``resolution`` is the job of :class:`~imgzoo.data.PairTransform`. ``scale`` is the task's
    `Task.scale`: paired folders are checked against it when opened, and side-by-side files,
    whose halves are one size, need it to be 1. ``inputs``: the task's named inputs, the only
    folders of paired data read besides ``A/`` and ``B/`` (None: every folder). ``factories``
    defaults to the datasets registered by installed plugins. Raises DataError for anything else.
    """
    kind, _, rest = spec.partition(":")
    if kind == "webdataset":
        from imgzoo.data.shards import WebDatasetShards

        if not rest:
            raise DataError(
                f"data spec {spec!r} needs shards after the colon: webdataset:shards/{{0..9}}.tar"
            )
        return WebDatasetShards(rest, inputs=inputs or ())
    if kind == "hfds":
        from imgzoo.data.hfds import HuggingFaceDataset

        source, _, option_text = rest.partition(",")
        if not source:
            raise DataError(f"data spec {spec!r} needs a dataset after the colon: hfds:PATH_OR_NAME")
        chosen = {key: str(value) for key, value in _parse_options(spec, option_text).items()}
        unknown = sorted(set(chosen) - {"split", "image", "target"})
        if unknown:
            raise DataError(
                f"data spec {spec!r}: unknown option {unknown[0]!r} (hfds takes split, image, target)"
            )
        return HuggingFaceDataset(source, inputs=inputs or (), **chosen)
    if kind in _FOLDER_KINDS:
        if not rest:
            raise DataError(f"data spec {spec!r} needs a folder after the colon: {kind}:PATH")
        return _FOLDER_KINDS[kind](Path(rest).expanduser(), scale, inputs)

    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "A").is_dir() and (path / "B").is_dir():
            return PairedFolders(path, scale=scale, inputs=inputs)
        return ImageFolder(path)
    if path.exists():
        raise DataError(
            f"data spec {spec!r} is a file: expected a folder of images or a registered dataset name",
            path=path,
        )

    name, _, option_text = spec.partition(":")
    if not _NAME.fullmatch(name):
        raise DataError(f"data folder {spec} does not exist", path=path)
    if factories is not None:
        factory, known = factories.get(name), list(factories)
    else:
        from imgzoo.catalogue import dataset_factory, list_datasets

        factory, known = dataset_factory(name), list_datasets()
    if factory is None:
        raise DataError(_unknown_name_message(spec, name, known), path=path)
    options: dict[str, Any] = {"resolution": resolution, "seed": seed, **_parse_options(spec, option_text)}
    return _build(name, factory, options)


def _aligned_pairs(path: Path, scale: int) -> AlignedPairs:
    if scale != 1:
        raise DataError(
            f"aligned:{path} holds input and target side by side at one size, but the task's output is "
            f"{scale} times larger than its input: put inputs in DIR/A/ and targets in DIR/B/ "
            "and use paired:DIR",
            path=path,
        )
    return AlignedPairs(path)


def _parse_options(spec: str, text: str) -> dict[str, Any]:
    """``k=v,k=v`` as a dict, values converted where they read as numbers or booleans."""
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not _OPTION_KEY.fullmatch(key):
            raise DataError(f"bad option {item!r} in data spec {spec!r}: expected key=value (n=500,seed=3)")
        if key in options:
            raise DataError(f"option {key!r} is given twice in data spec {spec!r}")
        if key == "resolution":
            size = _option_value(value)
            example = size if isinstance(size, int) and not isinstance(size, bool) else 128
            raise DataError(
                f"data spec {spec!r} sets 'resolution', which comes from the task's config field "
                f"{RESOLUTION_FIELD!r}: set that instead (--set {RESOLUTION_FIELD}={example})"
            )
        options[key] = _option_value(value)
    return options


def _option_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _build(name: str, factory: DatasetFactory, options: dict[str, Any]) -> Dataset:
    # Binding first tells a misspelled option apart from a TypeError raised inside the factory.
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some callables (builtins, C extensions) have none
        signature = None
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as error:
            accepted = [p for p in signature.parameters if p not in ("resolution", "seed")]
            hint = f"it accepts: {', '.join(accepted)}" if accepted else "it accepts no options"
            raise DataError(f"dataset {name!r} cannot take these options ({error}); {hint}") from error
    dataset = factory(**options)
    if not isinstance(dataset, Dataset):
        raise PluginError(
            f"the factory of dataset {name!r} returned {type(dataset).__name__}, "
            "not a dataset (an object with __len__ and __getitem__)"
        )
    return dataset


def _unknown_name_message(spec: str, name: str, registered: Collection[str]) -> str:
    known = sorted(registered)
    message = f"{spec!r} is neither an existing folder nor a registered dataset"
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        message += ": did you mean " + " or ".join(repr(match) for match in close) + "?"
    if known:
        message += f" (registered datasets: {', '.join(known)})"
    else:
        message += " (no datasets are registered: is a plugin installed? see `imgzoo plugins`)"
    return message
