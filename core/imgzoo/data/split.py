"""Splitting a dataset into training and validation parts: `train_val_split` and `Subset`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from imgzoo.data.base import Dataset, Sample


class Subset:
    """The items of ``dataset`` at ``indices``, in that order (a view: nothing is copied)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        # Indexing the list raises IndexError past the end, which also ends plain iteration.
        return self.dataset[self.indices[index]]

    def __iter__(self) -> Iterator[Sample]:
        return (self[index] for index in range(len(self)))

    def __repr__(self) -> str:
        return f"Subset({self.dataset!r}, {len(self)} items)"


def item_shards(dataset: Dataset) -> np.ndarray | None:
    """The shard of each item of ``dataset`` (a WebDataset's ``shard_ids``, through any
    :class:`Subset` or cache around it), or None for data whose items stand alone."""
    if isinstance(dataset, Subset):
        shards = item_shards(dataset.dataset)
        return None if shards is None else shards[np.asarray(dataset.indices, dtype=np.int64)]
    inner = getattr(dataset, "dataset", None)  # a CachedDataset
    if inner is not None and not hasattr(dataset, "shard_ids"):
        return item_shards(inner)
    shard_ids = getattr(dataset, "shard_ids", None)
    return np.asarray(shard_ids(), dtype=np.int64) if callable(shard_ids) else None


def train_val_split(dataset: Dataset, *, val_fraction: float = 0.1, seed: int = 0) -> tuple[Subset, Subset]:
    """Split ``dataset`` into disjoint ``(train, val)`` views covering it, by a seeded shuffle.

    Validation gets ``round(len * val_fraction)`` items, at least one when ``val_fraction > 0``
    and there are two or more items, and never all of them; ``val_fraction=0`` leaves it empty.
    The same seed and length always give the same split; each part keeps dataset order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    count = len(dataset)
    val_count = round(count * val_fraction)
    if val_fraction > 0 and count >= 2:
        val_count = min(max(val_count, 1), count - 1)
    order = np.random.default_rng(seed).permutation(count)
    val_indices = sorted(int(index) for index in order[:val_count])
    train_indices = sorted(int(index) for index in order[val_count:])
    return Subset(dataset, train_indices), Subset(dataset, val_indices)
