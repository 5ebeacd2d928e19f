"""Measuring a task's models on a set of pairs: ``task.predict`` then ``task.metrics``, averaged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from imgzoo.runtime import autocast
from imgzoo.task import Task
from imgzoo.training.batches import PairDataset

__all__ = ["AUTO_EVAL_MINIMUM", "evaluation_size", "measure", "spread_indices"]

GridRow = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# The fewest validation images an "auto"-sized evaluation measures: enough for a mean PSNR to
# move by a fraction of a dB between two evaluations of the same model, few enough that a
# short run is not spent evaluating (64 colorize pictures at 256 px take about 15 s on one CPU core).
AUTO_EVAL_MINIMUM = 64


def evaluation_size(setting: int | str | None, *, available: int, trained_images: int) -> int:
    """How many of ``available`` validation images an evaluation measures.

    ``setting`` is ``TrainConfig.eval_samples``: a cap, None for all of them, or ``"auto"``: as
    many as the whole run trains on (``trained_images``), at least :data:`AUTO_EVAL_MINIMUM`.
    A forward pass costs about a third of a training step's, so an "auto" evaluation never
    takes much longer than the training it measures, and a long run is measured on its whole
    validation split. The size depends only on the run's settings, so every evaluation of a run
    measures the same images and their metrics compare.
    """
    if setting is None:
        return available
    if setting == "auto":
        return min(available, max(AUTO_EVAL_MINIMUM, trained_images))
    return min(available, int(setting))


def spread_indices(count: int, available: int) -> list[int]:
    """``count`` indices spread evenly over ``range(available)``, from 0.

    A folder dataset lists its files in sorted order, so its first images may all come from one
    subfolder; evenly spaced ones sample all of it.
    """
    count = min(count, available)
    return [index * available // count for index in range(count)]


@torch.no_grad()
def measure(
    task: Task,
    models: Mapping[str, torch.nn.Module],
    pairs: PairDataset,
    *,
    indices: Sequence[int],
    batch_size: int,
    device: torch.device,
    precision: str,
    keep: int = 0,
) -> tuple[dict[str, float], list[GridRow]]:
    """Metrics over the pairs at ``indices`` (each batch's mean weighted by its size), and the
    display tensors (input, output, target) of the first ``keep`` of them for a picture grid.

    The caller puts the models in eval mode; pairs are read unaugmented (epoch 0 of a
    deterministic transform).
    """
    totals: dict[str, float] = {}
    rows: list[GridRow] = []
    seen = 0
    for start in range(0, len(indices), batch_size):
        items = [pairs[(0, index)] for index in indices[start : start + batch_size]]
        inputs = torch.stack([pair[0] for pair in items]).to(device)
        targets = torch.stack([pair[1] for pair in items]).to(device)
        with autocast(device, precision):
            outputs = task.predict(models, inputs)
        outputs = outputs.float()
        for name, value in task.metrics(outputs, targets, inputs).items():
            totals[name] = totals.get(name, 0.0) + float(value) * len(items)
        seen += len(items)
        if len(rows) < keep:
            shown = [
                task.to_display(tensor[: keep - len(rows)]).float().cpu()
                for tensor in (inputs, outputs, targets)
            ]
            rows.extend(zip(*shown, strict=True))
    return {name: total / max(seen, 1) for name, total in totals.items()}, rows
