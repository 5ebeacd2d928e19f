"""``imgzoo.train`` and ``imgzoo.evaluate``: a task name and a data spec in, a trained model or
metrics out. Both resolve everything (configs, data, output folder, checkpoint) before the
first step, so a mistake fails in seconds with a clear error."""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from imgzoo import plugins
from imgzoo.backends.pytorch import TorchBackend
from imgzoo.catalogue import task_info
from imgzoo.config import build_config, merged, read_config_file
from imgzoo.data import CachedDataset, Dataset, open_dataset, train_val_split
from imgzoo.errors import ArgumentError, ConfigError, DataError
from imgzoo.hardware import INFERENCE_PRECISIONS
from imgzoo.pipeline import LoadedWeights, Pipeline, build_task
from imgzoo.runtime import check_precision, resolve_device, resolve_precision
from imgzoo.task import Task, TaskConfig
from imgzoo.training.batches import PairDataset, pair_transforms
from imgzoo.training.checkpoint import resume_point
from imgzoo.training.config import PLACE_SETTINGS, build_train_config, split_settings
from imgzoo.training.evaluation import measure, measure_pipeline, spread_indices
from imgzoo.training.loop import Trainer
from imgzoo.training.results import Callback, TrainResult
from imgzoo.training.state import RunState
from imgzoo.weights import sha256_file

__all__ = ["Evaluation", "evaluate", "train"]


def train(
    task: str,
    data: str | Dataset,
    out: str | os.PathLike[str],
    *,
    config_file: str | os.PathLike[str] | None = None,
    resume: bool = False,
    weights: str | os.PathLike[str] | Literal[False] | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> TrainResult:
    """Train ``task`` on the data spec ``data`` (a folder, ``paired:DIR``, ``minifigs:n=500``...,
    or a dataset object), writing checkpoints, logs, pictures and the final ``TASK.safetensors``
    under ``out``; the data is split into training and validation parts by ``val_fraction``.

    ``**overrides``: settings by name, the task's and the trainer's side by side, as ``--set
    NAME=VALUE`` gives them on the command line: ``train("colorize", "minifigs", "runs/x",
    steps=200, image_size=64, learning_rate=1e-3)``. The task's are its config's fields
    (``imgzoo info TASK``), the trainer's :class:`~imgzoo.training.TrainConfig`'s (``imgzoo train
    --help``); no name is both, and any other is a :class:`~imgzoo.errors.ConfigError`.
    ``config_file``: a TOML/JSON file of the same settings (``steps = 200``), which the
    keyword arguments override.

    ``weights``: start from these weights (a name, path or URL); None or False: a fresh init
    (unlike :func:`imgzoo.load`, where None means the task's default weights), whose
    ``image_size`` and ``batch_size`` default to those of the recipe of the task's default
    weights in its registry entry, the settings its shipped model was trained at.
    ``resume``: continue the run in ``out`` from its newest checkpoint, with the task and train
    settings it was started with (settings given now override them). ``callbacks``: objects
    whose hooks the trainer calls (:class:`~imgzoo.training.Callback`).
    """
    out_dir = Path(out).expanduser()  # created by the Trainer, once everything has been checked
    config_class = plugins.get_task_class(task).Config
    recipe_task: dict[str, Any] = {}
    recipe_train: dict[str, Any] = {}
    if not resume and (weights is None or weights is False):
        recipe_task, recipe_train = _shipped_recipe(task, config_class)
    file_task: dict[str, Any] = {}
    file_train: dict[str, Any] = {}
    if config_file is not None:
        file_task, file_train = split_settings(
            task, config_class, read_config_file(Path(config_file), task=task), source=str(config_file)
        )
    set_task, set_train = split_settings(task, config_class, overrides, source="arguments")

    resumed: RunState | None = None
    resumed_train_config: dict[str, Any] | None = None
    if resume:
        if weights is not None and weights is not False:
            raise ArgumentError(
                "resume=True continues from the run's checkpoint: weights= cannot be given as well",
                argument="weights",
            )
        # The Trainer loads the same checkpoint again, and says which damaged ones it skips.
        _, _, resumed = resume_point(out_dir, task, warn=False)
        # Where to run is not part of a run: take it from this call, not from the checkpoint.
        resumed_train_config = {
            key: value for key, value in resumed.train_config.items() if key not in PLACE_SETTINGS
        }
    train_config = build_train_config(
        task,
        [
            ("the shipped recipe", recipe_train),
            ("the checkpoint", resumed_train_config),
            (str(config_file), file_train),
            ("arguments", set_train),
        ],
    )

    # The same seed gives every process the same initial weights.
    _seed_everything(train_config.seed)
    sources = ", ".join(
        name
        for name, layer in (
            ("the shipped recipe", recipe_task),
            (str(config_file), file_task),
            ("arguments", set_task),
        )
        if layer
    )
    settings = merged(merged(recipe_task, file_task), set_task)
    task_object, models, started_from = _build(task, resumed, weights, settings, sources)

    if isinstance(data, str):
        dataset = open_dataset(
            data,
            resolution=task_object.config.image_size,
            seed=train_config.seed,
            scale=task_object.scale,
            inputs=[spec.name for spec in task_object.extra_inputs],
        )
    else:
        dataset, data = data, repr(data)
    if train_config.cache_images:
        dataset = CachedDataset(dataset)
    train_split, val_split = train_val_split(
        dataset, val_fraction=train_config.val_fraction, seed=train_config.seed
    )
    trainer = Trainer(
        task_object,
        models,
        train_split,
        val_split,
        train_config,
        out_dir,
        callbacks,
        data_spec=data,
        started_from=started_from,
    )
    return trainer.fit(resume=resume)


class Evaluation(dict[str, float]):
    """The metrics :func:`evaluate` measured (a plain ``{name: value}`` dict), and on what."""

    def __init__(
        self,
        metrics: Mapping[str, float],
        *,
        task: str,
        weights: dict[str, str | None],
        data: dict[str, Any],
        per_image: Sequence[Mapping[str, float | str]] = (),
    ) -> None:
        super().__init__(metrics)
        self.task = task
        self.weights = weights
        """``name``, ``path`` and ``sha256`` of the weights (all None for an untrained model)."""
        self.data = data
        """``spec`` (the data spec, or the dataset's repr), the ``images`` measured, of
        ``available``, the ``mode`` ("model" or "pipeline") and the ``precision`` it ran at."""
        self.per_image = [dict(item) for item in per_image]
        """Each picture's ``name`` and metrics (a whole-pipeline evaluation only)."""

    def report(self) -> dict[str, Any]:
        """Task, weights, data and metrics (and each picture's, if measured), as ``imgzoo eval
        --json`` prints them."""
        report: dict[str, Any] = {
            "task": self.task,
            "weights": self.weights,
            "data": self.data,
            "metrics": dict(self),
        }
        if self.per_image:
            report["per_image"] = self.per_image
        return report


def evaluate(
    task: str,
    data: str | Dataset,
    *,
    weights: str | os.PathLike[str] | Literal[False] | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 16,
    max_samples: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    mode: Literal["model", "pipeline"] = "model",
    resolution: int | None = None,
) -> Evaluation:
    """The task's metrics on ``data`` (a data spec or a dataset object): on all of it, or on
    ``max_samples`` images spread evenly over it. The returned dict also says which weights
    (``.weights``) and images (``.data``) were measured.

    ``mode="model"`` (the trainer's measure): ``task.metrics``, averaged over images, each
    resized and centre-cropped to the task's ``image_size``. ``mode="pipeline"``: what users
    get, each picture at its own size made into an input by ``task.degrade``, run through
    ``run()``'s whole pipeline and compared with the picture by ``task.image_metrics``; each
    picture's metrics are in ``.per_image``. ``resolution``: the size a named dataset
    (``minifigs``) draws its pictures at (default: the task's ``image_size``).

    ``weights``: a registered name, a path or URL; None for the task's default weights, False
    for a fresh init. ``precision``: "auto" (as ``run()``: bf16 where the device computes it
    natively, else fp32), or "fp32" for figures that compare across machines, "bf16", "fp16".
    """
    check_precision(precision, allowed=INFERENCE_PRECISIONS)
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be at least 1, not {batch_size}", argument="batch_size")
    if max_samples is not None and max_samples < 1:
        raise ArgumentError(
            f"the number of images to evaluate must be at least 1, not {max_samples}", argument="max_samples"
        )
    if mode not in ("model", "pipeline"):
        raise ArgumentError(f"evaluation mode must be 'model' or 'pipeline', not {mode!r}", argument="mode")
    if resolution is not None and resolution < 1:
        raise ArgumentError(
            f"the resolution to evaluate at must be at least 1 pixel, not {resolution}", argument="resolution"
        )
    task_object, models, located = build_task(task, weights=_weights_arg(weights), overrides=overrides)
    if located is None and weights is not False:
        warnings.warn(f"task {task!r} has no weights to load: evaluating an untrained model", stacklevel=2)
    if isinstance(data, str):
        size, scale = resolution or task_object.config.image_size, task_object.scale
        inputs = [spec.name for spec in task_object.extra_inputs]
        dataset, spec = open_dataset(data, resolution=size, seed=0, scale=scale, inputs=inputs), data
    else:
        dataset, spec = data, repr(data)
    available = len(dataset)
    indices = spread_indices(available if max_samples is None else max_samples, available)
    if not indices:
        raise DataError(f"data {spec!r} holds no images to evaluate on")
    target = resolve_device(device)
    precision, _ = resolve_precision(precision, target)
    for model in models.values():
        model.to(target).eval()
    per_image: list[dict[str, float | str]] = []
    if mode == "pipeline":
        for model in models.values():
            model.requires_grad_(False)
        backend = TorchBackend(task_object, models, device=target, precision=precision, weights=located)
        pipeline = Pipeline(task_object, models, backend, weights=located)
        metrics, per_image = measure_pipeline(pipeline, dataset, indices=indices, spec=spec)
    else:
        pairs = PairDataset(dataset, task_object, pair_transforms(task_object)[1], seed=0, split="validation")
        metrics, _ = measure(
            task_object,
            models,
            pairs,
            indices=indices,
            batch_size=batch_size,
            device=target,
            precision=precision,
        )
    return Evaluation(
        metrics,
        task=task,
        weights=_describe_weights(located),
        data={
            "spec": spec,
            "images": len(indices),
            "available": available,
            "mode": mode,
            "precision": precision,
        },
        per_image=per_image,
    )


def _describe_weights(located: LoadedWeights | None) -> dict[str, str | None]:
    if located is None or located.path is None:
        return {"name": None, "path": None, "sha256": None}
    # A file given by path has no registry entry to state its checksum: compute it.
    sha256 = located.sha256 or sha256_file(located.path)
    return {"name": located.name, "path": str(located.path), "sha256": sha256}


def _build(
    task: str,
    resumed: RunState | None,
    weights: str | os.PathLike[str] | Literal[False] | None,
    settings: Mapping[str, Any],
    sources: str,
) -> tuple[Task, dict[str, torch.nn.Module], dict[str, str] | None]:
    """The task and freshly built models: from the checkpoint's task config when resuming
    (the checkpoint's weights are loaded by the trainer), else from ``weights`` or a fresh init.
    Third: which weights the run starts from (None for a fresh init or a resume)."""
    try:
        if resumed is not None:
            task_class = plugins.get_task_class(task)
            config = build_config(
                task_class.Config, task=task, weights_config=resumed.task_config, overrides=settings
            )
            assert isinstance(config, TaskConfig)
            task_object = task_class(config)
            return task_object, dict(task_object.build_models()), None
        task_object, models, located = build_task(
            task, weights=False if weights is None else _weights_arg(weights), overrides=settings
        )
        if located is None or located.path is None:
            return task_object, models, None
        # A weights file names what it was trained from, so a recipe of several stages can be
        # traced back from the last one.
        started_from = {"weights": str(weights), "sha256": sha256_file(located.path)}
        return task_object, models, started_from
    except ConfigError as error:
        raise ConfigError(error.task, error.errors, source=sources) from None


# What a fresh model takes from the recipe of its task's default weights: the settings that say
# what a run costs and what resolution the model works at, not its length or its optimizer.
_RECIPE_DEFAULTS = ("image_size", "batch_size")


def _shipped_recipe(task: str, config_class: type[TaskConfig]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's and the trainer's settings of :data:`_RECIPE_DEFAULTS` in the recipe of the
    task's default weights (none when it has no default weights, or its recipe names none)."""
    info = task_info(task)
    entry = info.weights.get(info.default_weights) if info.default_weights else None
    recipe = entry.recipe if entry is not None else {}
    # A recipe is free text beside its settings: only a whole number is a setting.
    chosen = {name: recipe[name] for name in _RECIPE_DEFAULTS if isinstance(recipe.get(name), int)}
    return split_settings(task, config_class, chosen, source=f"the recipe of {task}'s {info.default_weights}")


def _weights_arg(weights: str | os.PathLike[str] | Literal[False] | None) -> str | Literal[False] | None:
    """``weights=`` as :func:`imgzoo.pipeline.build_task` takes it: a path as a string, False
    (a fresh init) and None (the default weights) as they are."""
    return weights if weights is None or weights is False else os.fspath(weights)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
