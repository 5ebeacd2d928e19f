"""``MinifigsDataset``: a finite, indexable set of procedural minifigure pictures."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import SupportsIndex

import numpy as np

from imgzoo import DataError, Sample
from imgzoo_minifigs.generator import render_minifig

__all__ = ["MinifigsDataset"]

MIN_RESOLUTION = 8


class MinifigsDataset:
    """``n`` pictures of ``resolution`` x ``resolution``, picture ``i`` always the same for a ``seed``.

    Pictures are drawn on demand (a couple of milliseconds each at 256), so the set costs no
    memory or disk and any ``n`` is free.
    """

    def __init__(self, *, resolution: int = 256, seed: int = 0, n: int = 10_000) -> None:
        self.resolution = _integer("resolution", resolution, minimum=MIN_RESOLUTION)
        self.seed = _integer("seed", seed, minimum=0)
        self.n = _integer("n", n, minimum=1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        position = operator.index(index)
        # No negative indexing: a sample's name must not depend on how it was asked for.
        if not 0 <= position < self.n:
            raise IndexError(f"minifigs index {position} out of range 0..{self.n - 1}")
        pixels = render_minifig(position, seed=self.seed, size=self.resolution)
        image = pixels.astype(np.float32)
        image /= 255
        return Sample(
            image=image, name=f"minifig-{self.seed}-{position}", extras={"seed": self.seed, "index": position}
        )

    def __iter__(self) -> Iterator[Sample]:
        return (self[position] for position in range(self.n))

    def __repr__(self) -> str:
        return f"MinifigsDataset(resolution={self.resolution}, seed={self.seed}, n={self.n})"


def _integer(name: str, value: object, *, minimum: int) -> int:
    # bool is an int subclass, but ``n=True`` is a mistake, not one picture.
    if not isinstance(value, SupportsIndex) or isinstance(value, bool):
        raise DataError(f"minifigs: {name} must be an integer, got {value!r}")
    number = operator.index(value)
    if number < minimum:
        raise DataError(f"minifigs: {name} must be >= {minimum}, got {number}")
    return number
