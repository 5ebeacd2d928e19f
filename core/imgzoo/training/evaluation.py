"""Measuring a task's models on a set of pairs: ``task.predict`` then ``task.metrics``, averaged."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from imgzoo.runtime import autocast
from imgzoo.task import Task
from imgzoo.training.batches import PairDataset

__all__ = ["measure"]

GridRow = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@torch.no_grad()
def measure(
    task: Task,
    models: Mapping[str, torch.nn.Module],
    pairs: PairDataset,
    *,
    count: int,
    batch_size: int,
    device: torch.device,
    precision: str,
    keep: int = 0,
) -> tuple[dict[str, float], list[GridRow]]:
    """Metrics over the first ``count`` pairs (each batch's mean weighted by its size), and the
    display tensors (input, output, target) of the first ``keep`` pairs for a picture grid.

    The caller puts the models in eval mode; pairs are read unaugmented (epoch 0 of a
    deterministic transform).
    """
    totals: dict[str, float] = {}
    rows: list[GridRow] = []
    seen = 0
    for start in range(0, count, batch_size):
        items = [pairs[(0, index)] for index in range(start, min(count, start + batch_size))]
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
