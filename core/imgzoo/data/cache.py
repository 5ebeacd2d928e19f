"""`CachedDataset`: decode each sample once and keep it in memory, for small folders."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from imgzoo.data.base import Dataset, Sample


class CachedDataset:
    """``dataset`` with every sample kept in memory after its first decode.

    Worth it when the decoded images fit in RAM and decoding dominates an epoch. Each call
    returns fresh copies of the arrays, so a caller editing a sample in place cannot corrupt
    the cache. With DataLoader workers, each worker process fills its own cache.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._samples: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        count = len(self.dataset)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for a dataset of {count} items")
        index %= count
        sample = self._samples.get(index)
        if sample is None:
            sample = self._samples[index] = self.dataset[index]
        return dataclasses.replace(
            sample,
            image=sample.image.copy(),
            target=None if sample.target is None else sample.target.copy(),
            extras=dict(sample.extras),
            inputs={name: pixels.copy() for name, pixels in sample.inputs.items()},
        )

    def __iter__(self) -> Iterator[Sample]:
        return (self[index] for index in range(len(self)))

    def __repr__(self) -> str:
        return f"CachedDataset({self.dataset!r}, {len(self._samples)}/{len(self)} cached)"
