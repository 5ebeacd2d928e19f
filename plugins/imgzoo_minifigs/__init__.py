"""The ``minifigs`` data source: procedural toy-minifigure pictures, the zoo's offline dataset.

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party
one. Use it as ``--data minifigs`` or ``--data minifigs:n=500,seed=3``. Importing this module is
cheap; the drawing code (numpy, OpenCV) loads when a dataset is made.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, SupportsIndex

import imgzoo
from imgzoo import DataError

if TYPE_CHECKING:
    from imgzoo_minifigs.dataset import MinifigsDataset

IMGZOO_PLUGIN_API = 3  # the plugin API this module is written for

__all__ = ["make_dataset", "register_datasets"]

DEFAULT_N = 10_000
_OPTIONS = {"n": "number of pictures, default 10000"}


@imgzoo.hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    register(
        "minifigs",
        make_dataset,
        description="procedural toy minifigure pictures, drawn on demand (option n: how many)",
    )


def make_dataset(*, resolution: int | str, seed: int | str = 0, **options: object) -> MinifigsDataset:
    """Build the dataset from a data spec's values, which may arrive as strings (``n="500"``)."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        accepted = ", ".join(f"{name} ({meaning})" for name, meaning in _OPTIONS.items())
        raise DataError(f"minifigs: unknown option(s) {', '.join(unknown)}; accepted: {accepted}")
    from imgzoo_minifigs.dataset import MinifigsDataset  # here: numpy and OpenCV are slow to import

    return MinifigsDataset(
        resolution=_as_int("resolution", resolution),
        seed=_as_int("seed", seed),
        n=_as_int("n", options.get("n", DEFAULT_N)),
    )


def _as_int(name: str, value: object) -> int:
    """An integer option, which a data spec gives as a string."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise DataError(f"minifigs: option {name} must be an integer, got {value!r}") from None
    if isinstance(value, SupportsIndex) and not isinstance(value, bool):
        return operator.index(value)
    raise DataError(f"minifigs: option {name} must be an integer, got {value!r}")
