"""Loading a task with its weights, and the reusable inference :class:`Pipeline`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo import images as _images
from imgzoo import plugins, registry
from imgzoo import weights as _weights
from imgzoo.config import build_config
from imgzoo.errors import WeightsError, ZooError
from imgzoo.outputs import plan_outputs
from imgzoo.runtime import autocast, check_precision, resolve_device
from imgzoo.task import Task, TaskConfig
from imgzoo.tiling import Tiling, resolve_tiling, run_tiled

__all__ = ["LoadedWeights", "Pipeline", "PreparedCall", "build_task", "load", "prepare_call"]

WeightsArg = str | Path | None | bool


@dataclass
class LoadedWeights:
    """Where a pipeline's weights came from (``None`` fields for an untrained model)."""

    name: str | None = None
    path: Path | None = None
    sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _locate_weights(task: str, weights: WeightsArg) -> LoadedWeights | None:
    """Turn the user's ``weights=`` into a verified local file (None: train-from-scratch init)."""
    if weights is False or weights == "none":
        return None
    entry = registry.resolve_weights_name(
        task, None if weights is True else str(weights) if weights else None
    )
    if entry is not None:
        path = _weights.resolve_weights_file(
            entry.source, sha256=entry.sha256, base_dir=entry.base_dir, size=entry.size
        )
        return LoadedWeights(name=entry.name, path=path, sha256=entry.sha256)
    if weights is None or weights is True:
        return None
    text = str(weights)
    if text.startswith(("http://", "https://")):
        return LoadedWeights(name=text, path=_weights.resolve_weights_file(text, sha256=None))
    path = Path(text).expanduser()
    if path.is_file():
        return LoadedWeights(name=path.name, path=path)
    raise registry.unknown_weights_error(task, text)


def build_task(
    task: str,
    *,
    weights: WeightsArg = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Task, dict[str, torch.nn.Module], LoadedWeights | None]:
    """Resolve config and weights for a task and build its models with the weights loaded.

    ``weights``: a registered weights name, a path, a URL, ``None`` for the task's default
    (fresh init if it has none) or ``False`` for a fresh init.
    """
    task_class = plugins.get_task_class(task)
    located = _locate_weights(task, weights)
    tensors: dict[str, torch.Tensor] = {}
    if located is not None:
        assert located.path is not None
        tensors, located.metadata = _weights.load_weights(located.path, sha256=located.sha256)
        trained_for = located.metadata.get("task")
        if trained_for != task:
            raise WeightsError(
                f"{located.path}: these weights are for task {trained_for!r}, not {task!r}", path=located.path
            )
    config = build_config(
        task_class.Config,
        task=task,
        weights_config=located.metadata.get("config") if located else None,
        file=config_file,
        overrides=overrides,
    )
    assert isinstance(config, TaskConfig)
    task_object = task_class(config)
    models: dict[str, torch.nn.Module] = dict(task_object.build_models())
    if located is not None:
        _load_models(task_object, models, tensors, located.path)
    return task_object, models, located


def _load_models(
    task: Task, models: Mapping[str, torch.nn.Module], tensors: Mapping[str, Any], path: Any
) -> None:
    prefixes = {name.split(".", 1)[0] for name in tensors}
    unknown = prefixes - set(models)
    if unknown:
        raise WeightsError(
            f"{path}: holds tensors for model(s) {sorted(unknown)}, "
            f"but task {task.name!r} builds {sorted(models)}",
            path=path,
            tensor=sorted(unknown)[0],
        )
    if task.inference_model not in prefixes:
        raise WeightsError(
            f"{path}: no tensors for the inference model {task.inference_model!r} (expected names like "
            f"'{task.inference_model}.<parameter>')",
            path=path,
            tensor=task.inference_model,
        )
    for name in prefixes:
        _weights.load_state(models[name], tensors, prefix=name, path=path)


class Pipeline:
    """A task with its models loaded, ready to run on images: ``pipeline(image)``.

    Build one with :func:`imgzoo.load`. Calls are thread-safe (inference runs without
    gradients and never mutates the models).
    """

    def __init__(
        self,
        task: Task,
        models: Mapping[str, torch.nn.Module],
        *,
        device: torch.device,
        precision: str,
        weights: LoadedWeights | None,
        tile: Tiling | int | bool | None = None,
    ) -> None:
        self.task = task
        self.models = dict(models)
        self.device = device
        self.precision = precision
        self.weights = weights
        self.tiling: Tiling | None = resolve_tiling(task, tile)
        """Images larger than ``tiling.tile`` run in tiles (None: whole); set with ``load(tile=...)``."""

    @property
    def config(self) -> TaskConfig:
        return self.task.config

    @property
    def model(self) -> torch.nn.Module:
        """The model used at inference (for a GAN, its generator)."""
        return self.models[self.task.inference_model]

    def __repr__(self) -> str:
        weights = self.weights.name if self.weights else "untrained"
        return (
            f"Pipeline(task={self.task.name!r}, weights={weights!r}, device={self.device}, "
            f"precision={self.precision!r})"
        )

    def __call__(
        self, image: Any, *, output: str | Path | None = None, overwrite: bool = False, batch_size: int = 8
    ) -> Any:
        """Run on one image or a list of them; the result has the input's type and size.

        ``output``: also save the results there (a file for one image, else a folder, where an
        image read from ``x.jpg`` is saved as ``x.png``). An input is never replaced, nor an
        existing file unless ``overwrite=True``; this is checked before the model runs.
        """
        return self.run_prepared(
            prepare_call(image, output=output, overwrite=overwrite, batch_size=batch_size)
        )

    def run_prepared(self, call: PreparedCall) -> Any:
        """Run on inputs read and checked by :func:`prepare_call`, saving results where it planned."""
        results = self.process(call.inputs, batch_size=call.batch_size)
        for result, image, target in zip(results, call.inputs, call.targets or [], strict=False):
            _images.save_image(target, result, image.alpha)
        return _images.to_output(results, call.inputs, call.spec)

    def process(self, inputs: list[_images.Image], *, batch_size: int = 8) -> list[np.ndarray]:
        """Run on already-read images; returns HxWxC float32 arrays, one per input."""
        try:
            results = self._process(inputs, batch_size)
        except MemoryError as error:
            raise _images.out_of_memory(inputs, f"running task {self.task.name!r}") from error
        for image, result in zip(inputs, results, strict=True):
            if result.shape[:2] != (image.height, image.width):
                raise ZooError(
                    f"task {self.task.name!r} returned a {result.shape[1]}x{result.shape[0]} image for a "
                    f"{image.width}x{image.height} input: its postprocess() must restore the input size"
                )
        return results

    def _process(self, inputs: list[_images.Image], batch_size: int) -> list[np.ndarray]:
        task = self.task
        results: list[np.ndarray | None] = [None] * len(inputs)
        with torch.inference_mode():
            model_inputs: dict[int, torch.Tensor] = {}
            for index, image in enumerate(inputs):
                if self.tiling is not None and self.tiling.splits(image.height, image.width):
                    results[index] = run_tiled(task, image, self.tiling, self._forward, batch_size=batch_size)
                else:
                    model_inputs[index] = task.preprocess(image.pixels)
            # Inputs that preprocess to the same shape share one forward pass.
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for index, tensor in model_inputs.items():
                by_shape.setdefault(tuple(tensor.shape), []).append(index)
            for indices in by_shape.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    parts = [model_inputs[i] for i in chunk]
                    outputs = self._forward(parts[0] if len(parts) == 1 else torch.cat(parts))
                    for row, index in enumerate(chunk):
                        results[index] = task.postprocess(outputs[row], inputs[index].pixels)
        return [result for result in results if result is not None]

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The task's forward on a CPU batch, on this pipeline's device and precision; float32 on the CPU."""
        with autocast(self.device, self.precision):
            outputs = self.task.forward(self.models, batch.to(self.device, non_blocking=True))
        return outputs.float().cpu()


@dataclass
class PreparedCall:
    """Inputs read and checked, and where each result goes (``targets`` None: nowhere)."""

    inputs: list[_images.Image]
    spec: _images.OutputSpec
    targets: list[Path] | None
    batch_size: int


def prepare_call(image: Any, *, output: str | Path | None, overwrite: bool, batch_size: int) -> PreparedCall:
    """Read the inputs and plan their outputs: everything that can fail before the model runs."""
    if batch_size < 1:
        raise ZooError(f"batch_size must be at least 1, got {batch_size}")
    inputs, spec = _images.read_images(image)
    targets = None
    if output is not None:
        names = [
            f"{item.path.stem}.png" if item.path is not None else f"image-{index:04d}.png"
            for index, item in enumerate(inputs)
        ]
        sources = [item.path for item in inputs]
        targets = plan_outputs(output, sources, names, overwrite=overwrite, overwrite_hint="overwrite=True")
    return PreparedCall(inputs, spec, targets, batch_size)


def load(
    task: str,
    weights: WeightsArg = None,
    *,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    config: str | Path | None = None,
    tile: Tiling | int | bool | None = None,
    **overrides: Any,
) -> Pipeline:
    """Load a task with its weights into a reusable, callable :class:`Pipeline`.

    ``weights``: a registered name, a path or URL; ``None`` for the default weights.
    ``config``: a TOML/JSON config file; keyword arguments override single config fields.
    ``tile``: the tile side for images larger than it (tasks that declare ``tiling`` only);
    ``None`` for the task's own, ``0``/``False`` to run every image whole.
    """
    check_precision(precision)
    task_object, models, located = build_task(task, weights=weights, config_file=config, overrides=overrides)
    if located is None and weights is None:
        warnings.warn(
            f"task {task!r} has no weights to load: running an untrained model "
            "(train one with `imgzoo train`, or pass weights=PATH)",
            stacklevel=2,
        )
    target = resolve_device(device)
    for model in models.values():
        model.to(target).eval().requires_grad_(False)
    return Pipeline(task_object, models, device=target, precision=precision, weights=located, tile=tile)
