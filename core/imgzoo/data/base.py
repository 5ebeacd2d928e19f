"""What every data source yields: a `Sample`, and the `Dataset` protocol that holds them.

Datasets stay torch-free (numpy only) so they can be listed, inspected and unit-tested cheaply;
the task turns a sample into tensors (`Task.make_pair`) and the trainer batches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np


@dataclass
class Sample:
    """One training example.

    ``image`` is HxWx3 float32 RGB in [0, 1]. Single-image datasets (a folder of photos,
    ``minifigs``) fill only ``image``; the task derives its input from it (gray for
    colorization, edges for edges2photo). Paired datasets (``A/``+``B/`` folders, pix2pix's
    aligned files) put the *input* side in ``image`` and the wanted output in ``target``.

    ``inputs`` holds further named pictures of the same scene, HxWxC float32 (C = 1 or 3): an
    inpainting ``mask``, a reference image. Each is the size of ``image`` or of ``target``, and
    `imgzoo.data.PairTransform` moves it with them. ``extras`` is metadata (a seed, an index),
    never transformed.

    ``rng`` and ``split`` are set by the trainer and the evaluator before ``Task.make_pair``:
    the generator a task draws its corruption from (random holes, noise, blur), a pure function
    of (seed, step, sample) for training and of (seed, sample) alone for validation, so that a
    resumed run and every evaluation see the same draws; and whether the sample is for
    "train"ing or "validation".
    """

    image: np.ndarray
    target: np.ndarray | None = None
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    split: Literal["train", "validation"] = "train"


@runtime_checkable
class Dataset(Protocol):
    """A finite, indexable collection of samples (a ``Sequence[Sample]`` in spirit)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


# Signature of what a plugin registers for a dataset name: called with the working resolution
# the task asks for, a seed, and the ``key=value`` options of the data spec (``minifigs:n=500``).
DatasetFactory = Callable[..., Dataset]
