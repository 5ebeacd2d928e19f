"""From samples to batches: augmentation, ``task.make_pair`` and a reproducible batch order.

Reproducibility is by construction rather than by saved loader state:

* the order of epoch ``e`` is a permutation seeded by ``(seed, e)``;
* the augmentation of item ``i`` in epoch ``e`` draws from a generator seeded by ``(seed, e, i)``,
  and so does the task's own corruption of it (``Sample.rng``, a stream of its own); a
  validation item's is seeded by ``(seed, i)``, the same at every evaluation of every run;
* optimizer step ``s`` reads positions ``[p * B, (p + 1) * B)`` of its epoch's order, where
  ``(e, p) = divmod(s, steps_per_epoch)`` and ``B`` is the global batch.

So the batches of any step are a pure function of ``(seed, step)``: a resumed run, a run with
more or fewer loader workers and a distributed run all see the same images, augmented the same way.
Each global batch is cut into ``grad_accum`` micro-batches, and each of those into one shard
per process; the last, incomplete batch of an epoch is dropped.

Data in files of many samples (WebDataset shards) says which file each item is in
(``shard_ids``). In one process that changes nothing. In a distributed run the shards are
dealt to the processes once for the run (a permutation seeded by ``seed``, dealt round-robin),
and each process draws its part of every batch from its epoch's permutation of its own shards'
items: no two processes ever read the same shard (each can keep its own shards cached). The
order is then a function of ``(seed, step, processes)``; a process whose shards hold fewer
items than another's starts its list again before the epoch ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.utils.data

from imgzoo.data.base import Dataset
from imgzoo.data.transforms import PairTransform
from imgzoo.task import Task

__all__ = ["BatchPlan", "PairDataset", "auto_workers", "next_batch", "pair_transforms", "train_loader"]

# Tags that keep the seed streams of different purposes apart.
_ORDER_STREAM, _AUGMENT_STREAM, _SHARD_STREAM = 0, 1, 2
_TRAIN_CORRUPTION_STREAM, _VALIDATION_CORRUPTION_STREAM = 3, 4

Key = tuple[int, int]
"""(epoch, index): which item, and which epoch's augmentation of it."""


class PairDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``samples`` as ``(input, target)`` tensors: ``transform`` then ``task.make_pair``.

    Items are addressed by ``(epoch, index)``; the transform's random draws come from a
    generator seeded by ``(seed, epoch, index)``, so an item looks the same wherever it is loaded.
    The sample reaches ``make_pair`` with its ``split`` and an ``rng`` of its own for the task's
    corruption: seeded by ``(seed, epoch, index)`` for "train", by ``(seed, index)`` for
    "validation".
    """

    def __init__(
        self,
        samples: Dataset,
        task: Task,
        transform: PairTransform,
        *,
        seed: int,
        split: Literal["train", "validation"] = "train",
    ) -> None:
        self.samples = samples
        self.task = task
        self.transform = transform
        self.seed = seed
        self.split = split
        self.masks = [spec.name for spec in task.extra_inputs if spec.kind == "mask"]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng((self.seed, _AUGMENT_STREAM, epoch, index))
        sample = self.transform(self.samples[index], rng)
        sample.split = self.split
        if self.split == "train":
            sample.rng = np.random.default_rng((self.seed, _TRAIN_CORRUPTION_STREAM, epoch, index))
        else:
            sample.rng = np.random.default_rng((self.seed, _VALIDATION_CORRUPTION_STREAM, index))
        for name in self.masks:  # a mask read from files reaches the task as run() gives it: 0/1
            if name in sample.inputs:
                sample.inputs[name] = (sample.inputs[name] != 0).astype(np.float32)
        inputs, targets = self.task.make_pair(sample)
        return inputs, targets


def pair_transforms(task: Task) -> tuple[PairTransform, PairTransform]:
    """The training transform (``task.augmentations()``, at ``task.scale``) and the evaluation
    one: the same crop policy and scale, centre crops and nothing random."""
    train = PairTransform(task.config.image_size, scale=task.scale, **task.augmentations())
    return train, train.for_evaluation()


@dataclass(frozen=True)
class BatchPlan:
    """Which items every process reads for every optimizer step (see the module docstring)."""

    dataset_size: int
    batch_size: int
    grad_accum: int = 1
    world_size: int = 1
    seed: int = 0
    shards: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The shard of each item (see the module docstring), or None: the items stand alone."""

    @property
    def steps_per_epoch(self) -> int:
        return self.dataset_size // self.batch_size

    @property
    def shard_size(self) -> int:
        """Items one process reads per micro-batch."""
        return self.batch_size // (self.grad_accum * self.world_size)

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch index within the epoch)`` of optimizer step ``step``."""
        return divmod(step, self.steps_per_epoch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, _ORDER_STREAM, epoch))
        if self.shards is None or self.world_size == 1:
            return rng.permutation(self.dataset_size)
        return self._sharded_order(rng)

    def shards_of_rank(self, rank: int) -> list[int]:
        """The shards process ``rank`` reads (sharded data only)."""
        assert self.shards is not None
        dealt = np.random.default_rng((self.seed, _SHARD_STREAM)).permutation(np.unique(self.shards))
        return sorted(int(shard) for shard in dealt[rank :: self.world_size])

    def _sharded_order(self, rng: np.random.Generator) -> np.ndarray:
        assert self.shards is not None
        streams = [
            rng.permutation(np.flatnonzero(np.isin(self.shards, self.shards_of_rank(rank))))
            for rank in range(self.world_size)
        ]
        # Position p of the epoch is read by the rank whose shard of its micro-batch holds it.
        positions = np.arange(self.dataset_size)
        micro = self.batch_size // self.grad_accum
        within = positions % micro
        rank = within // self.shard_size
        nth = (positions // micro) * self.shard_size + within % self.shard_size
        order = np.empty(self.dataset_size, dtype=np.int64)
        for r, stream in enumerate(streams):
            chosen = rank == r
            order[chosen] = stream[nth[chosen] % len(stream)]
        return order

    def micro_batches(self, step: int, rank: int = 0, order: np.ndarray | None = None) -> list[list[Key]]:
        """The ``grad_accum`` lists of keys that process ``rank`` reads for step ``step``."""
        epoch, batch = self.position(step)
        order = self.epoch_order(epoch) if order is None else order
        first = batch * self.batch_size
        micro = self.batch_size // self.grad_accum
        result = []
        for m in range(self.grad_accum):
            start = first + m * micro + rank * self.shard_size
            result.append([(epoch, int(index)) for index in order[start : start + self.shard_size]])
        return result


class _StepBatches:
    """Endless batch sampler: the micro-batches of steps ``start, start + 1, ...`` for one process."""

    def __init__(self, plan: BatchPlan, start: int, rank: int) -> None:
        self.plan, self.start, self.rank = plan, start, rank

    def __iter__(self) -> Iterator[list[Key]]:
        step, epoch, order = self.start, -1, np.empty(0)
        while True:
            if self.plan.position(step)[0] != epoch:
                epoch = self.plan.position(step)[0]
                order = self.plan.epoch_order(epoch)
            yield from self.plan.micro_batches(step, self.rank, order)
            step += 1


# Signals that stop a run cleanly: the main process finishes its step and saves a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def hold_stop_signals() -> Iterator[None]:
    """Hold the stop signals (they wait, pending) while loader workers are started.

    A worker starts with its parent's signal mask, and a signal sent to the whole run between
    its start and its own handlers would kill it with the default action; held, it waits for
    :func:`_ignore_interrupts` instead. The main process gets what it missed when this ends."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: workers are spawned, not forked
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ignore_interrupts(worker_id: int) -> None:
    # Ctrl-C reaches every process of the terminal's group; workers must survive it so the
    # main process can finish its step and write a checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # systemd and Slurm send SIGTERM to every process of the run alike. A worker survives the
    # first one for the same reason; a second (the loader ending a worker that does not answer
    # its request to stop, or the process manager insisting) ends it.
    signal.signal(signal.SIGTERM, _survive_once)
    if hasattr(signal, "pthread_sigmask"):  # held since the worker started (hold_stop_signals)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _survive_once(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)


def auto_workers(world_size: int = 1) -> int:
    """Loader workers per process for ``num_workers="auto"``: the spare cores, at most 8."""
    spare = (os.cpu_count() or 1) // max(world_size, 1) - 1
    return max(0, min(8, spare))


def train_loader(
    pairs: PairDataset, plan: BatchPlan, *, start: int, rank: int, num_workers: int, pin_memory: bool
) -> torch.utils.data.DataLoader[Any]:
    """A DataLoader yielding this process's micro-batches from step ``start`` on, forever."""
    return torch.utils.data.DataLoader(
        pairs,
        batch_sampler=_StepBatches(plan, start, rank),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        worker_init_fn=_ignore_interrupts if num_workers > 0 else None,
        # A private generator: creating the iterator must not draw from the global torch RNG.
        generator=torch.Generator().manual_seed(plan.seed),
    )


def next_batch(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    plan: BatchPlan,
    pairs: PairDataset,
    step: int,
    rank: int,
    micro_step: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loader's next micro-batch, which is micro-batch ``micro_step`` of step ``step`` of
    process ``rank``.

    An error raised in a loader worker reaches this process as torch's copy of it: its type
    (or a RuntimeError) with the worker's whole traceback as the message. Batches are a pure
    function of the step, so reading the failed one again here raises the original error,
    with its own message.
    """
    try:
        return next(batches)
    except Exception as error:
        if "in DataLoader worker process" not in str(error).partition("\n")[0]:
            raise
        try:
            for key in plan.micro_batches(step, rank)[micro_step]:
                pairs[key]
        except Exception as original:
            raise original from None
        raise  # it does not happen again here: torch's copy is all there is
