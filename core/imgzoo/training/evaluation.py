"""Measuring a task's models: on pairs at the working resolution (``task.predict_for_metrics`` then
``task.metrics``, averaged), or through the whole pipeline, picture by picture at its own
resolution (``task.degrade``, ``run()``, then ``task.image_metrics``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from imgzoo.data.base import Dataset
from imgzoo.errors import DataError
from imgzoo.images import read_images
from imgzoo.inputs import read_inputs
from imgzoo.pipeline import Pipeline, Request
from imgzoo.runtime import autocast
from imgzoo.task import Task
from imgzoo.training.batches import PairDataset

__all__ = ["AUTO_EVAL_MINIMUM", "evaluation_size", "measure", "measure_pipeline", "spread_indices"]

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
            outputs = task.predict_for_metrics(models, inputs)
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


@torch.no_grad()
def measure_pipeline(
    pipeline: Pipeline, dataset: Dataset, *, indices: Sequence[int], spec: str = "the data"
) -> tuple[dict[str, float], list[dict[str, float | str]]]:
    """What users get: each picture at ``indices``, at its own resolution, made into the input a
    user would give (``task.degrade`` of the picture, with the named inputs it makes and
    random draws that are the same for a picture at every evaluation; a paired sample's own
    input, with its named inputs), run through ``pipeline`` as ``run()`` would, and compared with the truth by
    ``task.image_metrics``.

    Returns the metrics averaged over the pictures, and each picture's own (with its ``name``).
    """
    task = pipeline.task
    totals: dict[str, float] = {}
    per_image: list[dict[str, float | str]] = []
    for index in indices:
        sample = dataset[index]
        name = sample.name or f"#{index}"
        given_inputs = dict(sample.inputs)
        if sample.target is not None:
            given, truth = sample.image, sample.target
        else:
            given, made_inputs = _degrade(task, sample.image, np.random.default_rng(index), spec)
            truth = sample.image
            given_inputs.update(made_inputs)
        images, _ = read_images(np.ascontiguousarray(given, dtype=np.float32))
        images[0].source = f"{spec}: {name}"
        # The named inputs (an inpainting mask) reach the task as run(..., mask=m) would.
        named = read_inputs(type(task), images, {key: [value] for key, value in given_inputs.items()})
        request = Request(images[0], {key: values[0] for key, values in named.items()})
        result = pipeline.run([request])[0].output
        values = task.image_metrics(_rgb_tensor(result), _rgb_tensor(truth), _rgb_tensor(given))
        per_image.append({"name": name, **{key: float(value) for key, value in values.items()}})
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + float(value)
    return {key: total / max(len(per_image), 1) for key, total in totals.items()}, per_image


def _degrade(
    task: Task, truth: np.ndarray, rng: np.random.Generator, spec: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The task's input made from ``truth`` and its named inputs (none for a one-input task)."""
    try:
        made = task.degrade(truth, rng)
    except NotImplementedError:
        raise DataError(
            f"task {task.name!r} cannot make its input from a picture of {spec} (it has no degrade()): "
            "evaluate it through the whole pipeline on paired data (paired:DIR), or without "
            "--full-resolution"
        ) from None
    return made if isinstance(made, tuple) else (made, {})


def _rgb_tensor(pixels: np.ndarray) -> torch.Tensor:
    """HxWxC pixels (C = 1, 3 or 4; alpha dropped) as a 1x3xHxW float32 tensor."""
    values = np.asarray(pixels, dtype=np.float32)
    values = values[..., None] if values.ndim == 2 else values[..., :3]
    tensor = torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1)[None]
    return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor
