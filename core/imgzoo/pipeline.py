"""Loading a task with its weights, and the reusable inference :class:`Pipeline`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo import catalogue, onnx_backend, plugins
from imgzoo import images as _images
from imgzoo import weights as _weights
from imgzoo.config import build_config, config_file_argument
from imgzoo.errors import ArgumentError, BackendError, TaskBugError, WeightsError
from imgzoo.formats import MAP_SUFFIX, RESULT_SUFFIX, WRITABLE_SUFFIXES
from imgzoo.inputs import read_inputs
from imgzoo.outputs import plan_outputs
from imgzoo.runtime import INFERENCE_PRECISIONS, autocast, check_precision, resolve_device, resolve_precision
from imgzoo.task import Task, TaskConfig
from imgzoo.tiling import Tiling, resolve_tiling, run_tiled

__all__ = [
    "BACKENDS",
    "DEFAULT_WEIGHTS",
    "LoadedWeights",
    "Pipeline",
    "PreparedCall",
    "build_task",
    "load",
    "prepare_call",
]

WeightsArg = str | Path | None | bool

DEFAULT_WEIGHTS = "default"
"""``weights="default"``: the task's default weights, as ``weights=None`` (the default) says,
unless the task registers weights of that very name."""

BACKENDS = ("torch", "onnxruntime")
"""What runs the forward pass: PyTorch, or an ONNX Runtime session on the exported graph
(``pip install "imgzoo[onnx]"``; fp32 on the CPU). Pre- and post-processing are the same."""


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
    if weights == DEFAULT_WEIGHTS and DEFAULT_WEIGHTS not in catalogue.task_info(task).weights:
        weights = None  # a registry may name its own weights "default": those win
    entry = catalogue.resolve_weights_name(
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
    raise catalogue.unknown_weights_error(task, text)


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
        if isinstance(located.metadata.get("metrics"), Mapping):
            located.metadata["metrics"] = catalogue.canonical_metric_names(located.metadata["metrics"])
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
    if task.inference_model_name not in prefixes:
        raise WeightsError(
            f"{path}: no tensors for the inference model {task.inference_model_name!r} (expected names like "
            f"'{task.inference_model_name}.<parameter>')",
            path=path,
            tensor=task.inference_model_name,
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
        backend: str = "torch",
    ) -> None:
        check_backend(backend)
        self.task = task
        self.models = dict(models)
        """The models as built and loaded (what weights files hold)."""
        self.inference_models = dict(task.prepare_inference(self.models))
        """What inference runs: the task's :meth:`~imgzoo.Task.prepare_inference` of ``models``,
        made once here (changes to ``models`` afterwards do not reach it)."""
        self.device = device
        self.backend = backend
        """What runs the forward pass (see :data:`BACKENDS`)."""
        choose_precision = onnx_backend.resolve_precision if backend == "onnxruntime" else resolve_precision
        self.precision, self.precision_reason = choose_precision(precision, device)
        """The precision inference runs at (never ``"auto"``) and, when chosen by ``"auto"`` or
        by the backend, why."""
        self.weights = weights
        self.tiling: Tiling | None = resolve_tiling(task, tile)
        """Images larger than ``tiling.tile`` run in tiles (None: whole); set with ``load(tile=...)``."""
        self._exported: Callable[[torch.Tensor], torch.Tensor] | None = None
        if backend == "onnxruntime":  # last: exporting runs this pipeline's task on its models
            self._exported = onnx_backend.cached_model(self)

    @property
    def config(self) -> TaskConfig:
        return self.task.config

    @property
    def model(self) -> torch.nn.Module:
        """The model used at inference (for a GAN, its generator)."""
        return self.models[self.task.inference_model_name]

    def __repr__(self) -> str:
        weights = self.weights.name if self.weights else "untrained"
        why = f" ({self.precision_reason})" if self.precision_reason else ""
        return (
            f"Pipeline(task={self.task.name!r}, weights={weights!r}, backend={self.backend!r}, "
            f"device={self.device}, precision={self.precision!r}{why})"
        )

    def __call__(
        self,
        image: Any,
        *,
        output: str | Path | None = None,
        overwrite: bool = False,
        batch_size: int = 8,
        **inputs: Any,
    ) -> Any:
        """Run on one image or a list of them; the result has the input's type, and the size
        the task's ``output_size`` gives. ``inputs``: the task's named extra inputs
        (``mask=...``), one per image.

        ``output``: also save the results there (a file for one image, else a folder, where an
        image from ``x.jpg`` is saved as ``x.png``, a float map as ``x.npy``). An input is never
        replaced, nor an existing file unless ``overwrite=True``; this is checked before the
        model runs.
        """
        call = prepare_call(
            type(self.task), image, inputs, output=output, overwrite=overwrite, batch_size=batch_size
        )
        return self.run_prepared(call)

    def run_prepared(self, call: PreparedCall) -> Any:
        """Run on inputs read and checked by :func:`prepare_call`, saving results where it planned."""
        kind = self.task.output_kind
        results = self.process(call.inputs, batch_size=call.batch_size, extras=call.extras)
        # A task that takes the alpha has handled it: its output is final.
        shown = (
            [replace(image, alpha=None) for image in call.inputs] if self.task.wants_alpha else call.inputs
        )
        # Finished once (clipped, alpha put back), for the files and for what is returned alike.
        finished = [
            _images.finish_result(result, image, kind) for result, image in zip(results, shown, strict=True)
        ]
        for done, target in zip(finished, call.targets or [], strict=False):
            _images.save_result(target, done, kind)
        return _images.finished_output(finished, call.spec, kind)

    def process(
        self,
        inputs: list[_images.Image],
        *,
        batch_size: int = 8,
        extras: Mapping[str, list[_images.Image]] | None = None,
    ) -> list[np.ndarray]:
        """Run on already-read images (and the task's extra inputs, read and checked by
        :func:`imgzoo.inputs.read_inputs`); returns HxWxC arrays, one per image, as
        ``postprocess`` made them (not yet clipped, alpha not put back): float32, or uint8 from
        a task that ``takes_stored_pixels``."""
        finishers = self.process_deferred(inputs, batch_size=batch_size, extras=extras)
        try:
            return [finish() for finish in finishers]
        except MemoryError as error:
            raise _images.out_of_memory(inputs, f"running task {self.task.name!r}") from error

    def process_deferred(
        self,
        inputs: list[_images.Image],
        *,
        batch_size: int = 8,
        extras: Mapping[str, list[_images.Image]] | None = None,
    ) -> list[Callable[[], np.ndarray]]:
        """:meth:`process` in two halves: runs the model now, and returns one function per image
        that postprocesses its result and holds it to the task's declarations when called. The
        functions may be called from other threads, so that postprocessing overlaps the next
        batch's forward pass."""
        try:
            pending = self._process(inputs, extras or {}, batch_size)
        except MemoryError as error:
            raise _images.out_of_memory(inputs, f"running task {self.task.name!r}") from error
        return [
            functools.partial(self._finish, image, make) for image, make in zip(inputs, pending, strict=True)
        ]

    def _finish(self, image: _images.Image, make: Callable[[], np.ndarray]) -> np.ndarray:
        result = make()
        self._check_result(image, result)
        return result

    def run_batch(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The task's forward pass on preprocessed inputs of one shape (1xCxHxW each), batched;
        returns the outputs as float32 on the CPU."""
        return self._forward(parts[0] if len(parts) == 1 else torch.cat(parts))

    def _process(
        self, inputs: list[_images.Image], extras: Mapping[str, list[_images.Image]], batch_size: int
    ) -> list[Callable[[], np.ndarray]]:
        """Run the model on every input; one postprocessing function per input, in order."""
        task = self.task
        # Computed for images that run whole only: a tiled image is converted one tile at a time.
        arguments: dict[int, tuple[np.ndarray, dict[str, np.ndarray | None]]] = {}
        results: list[Callable[[], np.ndarray] | None] = [None] * len(inputs)
        with torch.inference_mode():
            model_inputs: dict[int, torch.Tensor] = {}
            for index, image in enumerate(inputs):
                if self.tiling is not None and self.tiling.splits(image.height, image.width):
                    tiled = run_tiled(task, image, self.tiling, self._forward, batch_size=batch_size)
                    results[index] = functools.partial(np.asarray, tiled)
                else:
                    arguments[index] = self._task_arguments(index, image, extras)
                    model_inputs[index] = self._preprocess(*arguments[index])
            # Inputs that preprocess to the same shape share one forward pass.
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for index, tensor in model_inputs.items():
                by_shape.setdefault(tuple(tensor.shape), []).append(index)
            for indices in by_shape.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    outputs = self.run_batch([model_inputs[i] for i in chunk])
                    for row, index in enumerate(chunk):
                        pixels, named = arguments[index]
                        results[index] = functools.partial(_postprocess, task, outputs[row], pixels, named)
        return [result for result in results if result is not None]

    def model_input(
        self, image: _images.Image, named: Mapping[str, _images.Image] | None = None
    ) -> torch.Tensor:
        """The task's ``preprocess`` of one read image and its named inputs (1xCxHxW), as a
        whole-image run gives it to the model."""
        extras = {name: [value] for name, value in (named or {}).items()}
        return self._preprocess(*self._task_arguments(0, image, extras))

    def _task_arguments(
        self, index: int, image: _images.Image, extras: Mapping[str, list[_images.Image]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
        """What ``preprocess`` and ``postprocess`` receive for one image: its pixels (RGBA for a
        task that wants alpha) and each declared extra input by name (None when not given)."""
        pixels = image.stored if self.task.takes_stored_pixels else image.pixels
        if self.task.wants_alpha:
            alpha = image.alpha if image.alpha is not None else np.ones(pixels.shape[:2], np.float32)
            pixels = np.dstack([image.rgb(), alpha])
        named = {
            spec.name: extras[spec.name][index].pixels if spec.name in extras else None
            for spec in self.task.extra_inputs
        }
        return pixels, named

    def _preprocess(self, pixels: np.ndarray, named: Mapping[str, np.ndarray | None]) -> torch.Tensor:
        tensor = self.task.preprocess(pixels, **named)
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4 or tensor.shape[0] != 1:
            shape = getattr(tensor, "shape", type(tensor).__name__)
            raise TaskBugError(self.task.name, f"preprocess() returned {shape}, not a 1xCxHxW tensor")
        return tensor

    def _check_result(self, image: _images.Image, result: np.ndarray) -> None:
        """Hold one postprocessed result to the task's declared geometry, kind and channels."""
        task = self.task
        expected = task.output_size(image.height, image.width)
        channels = result.shape[2] if result.ndim == 3 else 1 if result.ndim == 2 else 0
        if result.ndim not in (2, 3) or result.shape[:2] != tuple(expected):
            raise TaskBugError(
                task.name,
                f"returned an output of shape {result.shape} for a {image.width}x{image.height} input, "
                f"but its output_size() says {expected[1]}x{expected[0]} (HxWxC)",
            )
        if task.output_channels is not None and channels != task.output_channels:
            raise TaskBugError(
                task.name,
                f"returned {channels} channels, but declares output_channels = {task.output_channels}",
            )
        if task.output_kind == "image" and channels not in (1, 3, 4):
            raise TaskBugError(
                task.name,
                f"returned an image with {channels} channels (1, 3 or 4 expected); a task whose outputs are "
                "not pictures declares output_kind = 'map'",
            )

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The task's forward on a CPU batch, on this pipeline's device and precision; float32 on the CPU."""
        if self._exported is not None:
            return self._exported(batch)
        with autocast(self.device, self.precision):
            outputs = self.task.forward(self.inference_models, batch.to(self.device, non_blocking=True))
        return outputs.float().cpu()


def _postprocess(
    task: Task, output: torch.Tensor, pixels: np.ndarray, named: Mapping[str, np.ndarray | None]
) -> np.ndarray:
    with torch.inference_mode():
        return np.asarray(task.postprocess(output, pixels, **named))


@dataclass
class PreparedCall:
    """Inputs read and checked, and where each result goes (``targets`` None: nowhere).
    ``extras``: the task's named inputs, one per image, by name."""

    inputs: list[_images.Image]
    spec: _images.OutputSpec
    targets: list[Path] | None
    batch_size: int
    extras: dict[str, list[_images.Image]] = field(default_factory=dict)


def prepare_call(
    task_class: type[Task],
    image: Any,
    inputs: Mapping[str, Any],
    *,
    output: str | Path | None,
    overwrite: bool,
    batch_size: int,
) -> PreparedCall:
    """Read the image(s) and the task's named ``inputs``, check them against the task's
    declarations and plan the outputs: everything that can fail before the model runs."""
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be at least 1, got {batch_size}", argument="batch_size")
    images, spec = _images.read_images(image)
    extras = read_inputs(task_class, images, inputs)
    targets = None
    if output is not None:
        is_map = task_class.output_kind == "map"
        suffix = MAP_SUFFIX if is_map else RESULT_SUFFIX
        names = [
            f"{item.path.stem}{suffix}" if item.path is not None else f"image-{index:04d}{suffix}"
            for index, item in enumerate(images)
        ]
        sources = [item.path for item in images]
        targets = plan_outputs(
            output,
            sources,
            names,
            overwrite=overwrite,
            overwrite_hint="overwrite=True",
            suffixes=(MAP_SUFFIX,) if is_map else WRITABLE_SUFFIXES,
            also_read=[item.path for items in extras.values() for item in items if item.path is not None],
        )
    return PreparedCall(images, spec, targets, batch_size, extras)


def load(
    task: str,
    weights: WeightsArg = None,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    config_file: str | Path | None = None,
    tile: Tiling | int | bool | None = None,
    backend: str = "torch",
    config: str | Path | None = None,
    **overrides: Any,
) -> Pipeline:
    """Load a task with its weights into a reusable, callable :class:`Pipeline`.

    ``weights``: a registered name, a path or URL. ``None`` (or ``"default"``) loads the task's
    default weights from the catalogue, not a random init; ``"none"`` (or ``False``) builds the
    untrained model.
    ``config_file``: a TOML/JSON config file (``config=`` is accepted too); keyword arguments
    override single config fields.
    ``tile``: the tile side for images larger than it (tasks that declare ``tiling`` only);
    ``None`` for the task's own, ``0``/``False`` to run every image whole.
    ``precision``: ``"auto"`` runs bf16 where the device computes it natively (a CPU with
    AVX512-BF16 or AMX, a CUDA GPU of compute capability 8.0+), else fp32; or ``"fp32"``,
    ``"bf16"``, ``"fp16"``. The pipeline's repr says which runs and why.
    ``backend``: ``"torch"``, or ``"onnxruntime"`` to run the forward pass in ONNX Runtime
    (fp32, CPU), exported on first use and cached (see :mod:`imgzoo.onnx_backend`).
    """
    check_precision(precision, allowed=INFERENCE_PRECISIONS)
    check_backend(backend)
    config_file = config_file_argument(config_file, config, task=task)
    if backend == "onnxruntime":
        onnx_backend.require_onnxruntime()  # before any model is built
        if device == "auto":
            device = "cpu"
    task_object, models, located = build_task(
        task, weights=weights, config_file=config_file, overrides=overrides
    )
    if located is None and (weights is None or weights == DEFAULT_WEIGHTS):
        warnings.warn(
            f"task {task!r} has no weights to load: running an untrained model "
            "(train one with `imgzoo train`, or pass weights=PATH)",
            stacklevel=2,
        )
    target = resolve_device(device)
    for model in models.values():
        model.to(target).eval().requires_grad_(False)
    return Pipeline(
        task_object, models, device=target, precision=precision, weights=located, tile=tile, backend=backend
    )


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}", backend=backend)
    return backend
