"""Loading a task with its weights, and the :class:`Pipeline` every front-end runs through.

``imgzoo.run``, ``Pipeline.__call__``, ``imgzoo run``, ``imgzoo serve``, full-resolution
evaluation and export all make :class:`Request` objects and call :meth:`Pipeline.run`, the one
path from read inputs to finished, saved results with the task's warnings. The forward pass
itself is the :mod:`backend <imgzoo.backends>`'s.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo import catalogue, plugins
from imgzoo import images as _images
from imgzoo import weights as _weights
from imgzoo.backends import DEFAULT_BACKEND, backend_class
from imgzoo.backends.base import Backend
from imgzoo.config import build_config
from imgzoo.domain import DOMAIN_KEY, DomainStatistics
from imgzoo.errors import ArgumentError, MemoryBudgetError, TaskBugError, WeightsError
from imgzoo.formats import MAP_SUFFIX, RESULT_SUFFIX, WRITABLE_SUFFIXES
from imgzoo.hardware import memory_available
from imgzoo.inputs import read_inputs
from imgzoo.outputs import plan_outputs
from imgzoo.runtime import INFERENCE_PRECISIONS, check_precision, resolve_device
from imgzoo.task import Task, TaskConfig
from imgzoo.tiling import TILE_BATCH_PIXELS, Tiling, resolve_tiling, run_tiled

__all__ = [
    "DEFAULT_WEIGHTS",
    "IMAGE_BYTES_PER_PIXEL",
    "LoadedWeights",
    "Pipeline",
    "Request",
    "Result",
    "build_task",
    "check_batch_size",
    "deliver",
    "load",
    "prepare_requests",
]

WeightsArg = str | Path | None | bool

TaskArguments = tuple[np.ndarray, dict[str, np.ndarray | None]]
"""What a task's ``preprocess`` and ``postprocess`` get for one image: its pixels, and its
named inputs by name."""

IMAGE_BYTES_PER_PIXEL = 64
"""Memory an image and its result take around the forward pass, per input pixel (times the
output's area for a task that enlarges): the decoded picture, its float copy, the task's pre-
and postprocessing at full resolution, the finished result and its encoding."""

_PROBE_SIDE = 64  # the side of the picture that measures a task's bytes per pixel
_PROBE_CROP = 256  # the largest side of the model input it measures with
_PEAK_MARGIN = 1.5  # see Pipeline.bytes_per_pixel; colorize at image_size=2048 peaks at 1.2x its count

DEFAULT_WEIGHTS = "default"
"""``weights="default"``: the task's default weights, as ``weights=None`` (the default) says,
unless the task registers weights of that very name."""


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
    if _weights.is_remote_source(text):
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

    ``weights``: a registered weights name, a path, a URL, a Hub address
    (``hf://OWNER/REPO[@REVISION]/PATH.safetensors``), ``None`` for the task's default
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
        if DOMAIN_KEY in located.metadata:
            task_object.domain_statistics = DomainStatistics.from_metadata(
                located.metadata[DOMAIN_KEY], path=str(located.path)
            )
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


# ── requests and results ──────────────────────────────────────────────────────────────────────
@dataclass
class Request:
    """One image to run, read and checked: its named inputs by name (one image each), the
    file to save its result to (None: not saved), and whether that may replace a file."""

    image: _images.Image
    inputs: dict[str, _images.Image] = field(default_factory=dict)
    save_to: Path | None = None
    overwrite: bool = False


@dataclass
class Result:
    """What :meth:`Pipeline.run` made of one request."""

    output: np.ndarray
    """The finished result, HxWxC: an image clipped to [0, 1] (float32, or uint8 from a task
    that ``takes_stored_pixels``) with the input's alpha put back, or a float32 map."""
    warnings: list[str] = field(default_factory=list)
    """What the task warned about this image (each message once)."""
    saved: Path | None = None
    """The file the result was written to, if the request asked for one."""


# The task's warnings are caught per image with warnings.catch_warnings, which changes the
# process's warning state: one thread at a time, across every pipeline. The forward pass, which
# calls no task hook that warns, runs outside it.
_WARNINGS_LOCK = threading.RLock()


@contextlib.contextmanager
def _task_warnings(into: list[str]) -> Iterator[None]:
    """Collect the warnings raised inside into ``into`` instead of showing them."""
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                message = str(warning.message)
                if message not in into:
                    into.append(message)


class Pipeline:
    """A task with its models loaded and a backend to run them: ``pipeline(image)``.

    Build one with :func:`imgzoo.load`. :meth:`run` is the one way in, for every front-end;
    calling the pipeline reads the image(s) the way :func:`imgzoo.run` does and returns results
    of the input's type. Calls are thread-safe: forward passes take turns, the rest overlaps.
    """

    def __init__(
        self,
        task: Task,
        models: Mapping[str, torch.nn.Module],
        backend: Backend,
        *,
        weights: LoadedWeights | None,
        tile: Tiling | int | bool | None = None,
    ) -> None:
        self.task = task
        self.models = dict(models)
        """The models as built and loaded (what weights files hold)."""
        self.backend = backend
        """What runs the forward pass (see :mod:`imgzoo.backends`)."""
        self.weights = weights
        self.tiling: Tiling | None = resolve_tiling(task, tile)
        """Images larger than ``tiling.tile`` run in tiles (None: whole); set with ``load(tile=...)``."""
        self._forward_lock = threading.Lock()

    @property
    def config(self) -> TaskConfig:
        return self.task.config

    @property
    def model(self) -> torch.nn.Module:
        """The model used at inference (for a GAN, its generator)."""
        return self.models[self.task.inference_model_name]

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def precision(self) -> str:
        """The precision inference runs at (never ``"auto"``)."""
        return self.backend.precision

    @property
    def precision_reason(self) -> str | None:
        """Why that precision, when ``"auto"`` or the backend chose it."""
        return self.backend.precision_reason

    def __repr__(self) -> str:
        weights = self.weights.name if self.weights else "untrained"
        why = f" ({self.precision_reason})" if self.precision_reason else ""
        return (
            f"Pipeline(task={self.task.name!r}, weights={weights!r}, backend={self.backend.name!r}, "
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
        (``mask=...``), one per image. The task's warnings are Python warnings.

        ``output``: also save the results there (a file for one image, else a folder, where an
        image from ``x.jpg`` is saved as ``x.png``, a float map as ``x.npy``). An input is never
        replaced, nor an existing file unless ``overwrite=True``; this is checked before the
        model runs.
        """
        check_batch_size(batch_size)
        requests, spec = prepare_requests(type(self.task), image, inputs, output=output, overwrite=overwrite)
        return deliver(self.run(requests, batch_size=batch_size), spec, self.task.output_kind)

    # ── memory ────────────────────────────────────────────────────────────────────────────────
    def memory_needed(self, sizes: Sequence[tuple[int, int]], batch_size: int = 8) -> int:
        """Bytes that :meth:`run` is estimated to need at its peak for images of these (height,
        width) sizes, known before any of them is decoded: :data:`IMAGE_BYTES_PER_PIXEL` for each
        image and result, and the task's :meth:`bytes_per_pixel` times the pixels of the largest
        forward pass (up to ``batch_size`` whole images, or one image's batch of tiles)."""
        task = self.task
        arrays = sum(height * width for height, width in sizes) * IMAGE_BYTES_PER_PIXEL * (1 + task.scale**2)
        whole: list[int] = []
        tiled = 0
        for height, width in sizes:
            if self.tiling is not None and self.tiling.splits(height, width):
                tile = self.tiling.tile
                per_pass = max(1, min(batch_size, TILE_BATCH_PIXELS // tile**2))
                tiled = max(tiled, per_pass * _area(task.working_size(tile, tile)))
            else:
                whole.append(_area(task.working_size(height, width)))
        largest_pass = max(tiled, sum(sorted(whole, reverse=True)[:batch_size]))
        return arrays + int(self.bytes_per_pixel * largest_pass)

    @functools.cached_property
    def bytes_per_pixel(self) -> float:
        """The task's :attr:`~imgzoo.Task.bytes_per_pixel`, or, where it declares none, the
        most bytes the models' intermediate tensors held at once in one forward pass of a small
        picture, per pixel the model saw (times :data:`_PEAK_MARGIN` for what passes between
        modules uncounted: functional operations, convolution workspaces)."""
        if self.task.bytes_per_pixel is not None:
            return float(self.task.bytes_per_pixel)
        stored = np.zeros(
            (_PROBE_SIDE, _PROBE_SIDE, 3), np.uint8 if self.task.takes_stored_pixels else np.float32
        )
        inputs = {
            spec.name: _images.Image(
                np.zeros((_PROBE_SIDE, _PROBE_SIDE, spec.channels or 3), np.float32), None, "probe"
            )
            for spec in self.task.extra_inputs
        }
        tensor = self._preprocess([], self._arguments(Request(_images.Image(stored, None, "probe"), inputs)))
        # A task with a large working size makes even a small picture large: a corner of it
        # measures the same per pixel (one that the model cannot take is measured whole).
        corner = tensor[..., :_PROBE_CROP, :_PROBE_CROP]
        try:
            peak = self._peak_bytes(corner)
        except RuntimeError:
            corner = tensor
            peak = self._peak_bytes(corner)
        return peak * _PEAK_MARGIN / (corner.shape[-2] * corner.shape[-1])

    def _peak_bytes(self, tensor: torch.Tensor) -> int:
        """The most bytes that the input and the models' module outputs held at once during one
        forward pass of ``tensor``, counted in fp32, each output until it is freed."""
        live = {"now": tensor.nelement() * 4}
        peak = live["now"]
        held: set[int] = set()

        def release(address: int, size: int) -> None:
            held.discard(address)
            live["now"] -= size

        def count(_: torch.nn.Module, __: Any, output: Any) -> None:
            nonlocal peak
            if not isinstance(output, torch.Tensor) or output.data_ptr() in held:
                return  # an in-place module's output is its input, counted already
            size = output.nelement() * max(4, output.element_size())
            held.add(output.data_ptr())
            live["now"] += size
            peak = max(peak, live["now"])
            weakref.finalize(output, release, output.data_ptr(), size)

        leaves = [
            module
            for model in self.models.values()
            for module in model.modules()
            if next(module.children(), None) is None
        ]
        hooks = [module.register_forward_hook(count) for module in leaves]
        try:
            with self._forward_lock, torch.inference_mode():
                self.task.forward(self.models, tensor.contiguous().to(self.device))
        finally:
            for hook in hooks:
                hook.remove()
        return peak

    def check_memory(self, sizes: Sequence[tuple[int, int]], batch_size: int, limit: int) -> None:
        """Raise :class:`~imgzoo.errors.MemoryBudgetError` when images of these sizes cannot be
        run within ``limit`` bytes, saying so in one line with what to do instead."""
        needed = self.memory_needed(sizes, batch_size)
        if needed <= limit:
            return
        height, width = max(sizes, key=_area)
        working = "x".join(map(str, self.task.working_size(height, width)[::-1]))
        images = f"{len(sizes)} images" if len(sizes) > 1 else "1 image"
        raise MemoryBudgetError(
            f"task {self.task.name!r} would need about {_gib(needed)} for {images} (the largest "
            f"{width}x{height}, run at {working}), more than the {_gib(limit)} it may use: use a smaller "
            "image or working size (image_size), a smaller batch, or run it in tiles (tile=) where the "
            "task allows",
            needed=needed,
            limit=limit,
        )

    # ── the one entry ─────────────────────────────────────────────────────────────────────────
    def run(
        self, requests: Sequence[Request], *, batch_size: int = 8, memory_limit: int | None = None
    ) -> list[Result]:
        """Run the task on each request, in order: preprocess, forward passes of up to
        ``batch_size`` inputs of one shape (tiles of a large image among them), postprocess,
        each result held to the task's declarations, finished and saved where asked.
        ``memory_limit``: the bytes the run may take (default: what this process can still
        allocate); a run estimated to need more is refused before it starts (see
        :meth:`memory_needed`)."""
        check_batch_size(batch_size)
        notes: list[list[str]] = [[] for _ in requests]
        try:
            # Inside: the estimate's one-time probe is a forward pass too.
            self.check_memory(
                [(request.image.height, request.image.width) for request in requests],
                batch_size,
                memory_available() if memory_limit is None else memory_limit,
            )
            with torch.inference_mode():
                outputs = self._outputs(requests, notes, batch_size)
        except MemoryError as error:
            raise _images.out_of_memory(
                [request.image for request in requests], f"running task {self.task.name!r}"
            ) from error
        return [
            self._finish(request, output, note)
            for request, output, note in zip(requests, outputs, notes, strict=True)
        ]

    def _outputs(
        self, requests: Sequence[Request], notes: list[list[str]], batch_size: int
    ) -> list[np.ndarray]:
        """Each request's postprocessed output (not yet clipped, alpha not put back)."""
        outputs: list[np.ndarray | None] = [None] * len(requests)
        whole: dict[int, TaskArguments] = {}
        for index, request in enumerate(requests):
            image, note = request.image, notes[index]
            if self.tiling is not None and self.tiling.splits(image.height, image.width):
                outputs[index] = run_tiled(
                    self.tiling,
                    image.height,
                    image.width,
                    scale=self.task.scale,
                    crop=functools.partial(self._arguments, request),
                    preprocess=functools.partial(self._preprocess, note),
                    forward=functools.partial(self._forward_by_shape, batch_size=batch_size),
                    postprocess=functools.partial(self._postprocess, note),
                    batch_size=batch_size,
                )
            else:
                whole[index] = self._arguments(request)
        tensors = [self._preprocess(notes[index], arguments) for index, arguments in whole.items()]
        for (index, arguments), made in zip(
            whole.items(), self._forward_by_shape(tensors, batch_size), strict=True
        ):
            outputs[index] = self._postprocess(notes[index], made, arguments)
        return [output for output in outputs if output is not None]

    def _forward_by_shape(self, tensors: Sequence[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
        """The backend's output for each preprocessed input (1xCxHxW), in order: inputs of one
        shape share forward passes of up to ``batch_size``."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, tensor in enumerate(tensors):
            by_shape.setdefault(tuple(tensor.shape), []).append(index)
        made: list[torch.Tensor | None] = [None] * len(tensors)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = tensors[chunk[0]] if len(chunk) == 1 else torch.cat([tensors[i] for i in chunk])
                with self._forward_lock:
                    outputs = self.backend.forward(batch)
                for row, index in enumerate(chunk):
                    made[index] = outputs[row]
        return [output for output in made if output is not None]

    def _arguments(
        self, request: Request, rows: slice | None = None, columns: slice | None = None
    ) -> TaskArguments:
        """What ``preprocess`` and ``postprocess`` receive for a request, or for one tile of it
        (``rows``, ``columns``): its pixels (RGBA for a task that wants alpha; the stored integers
        for a task that takes them) and each declared named input by name (None when not given;
        cut to the tile when it has the image's size)."""
        image, task = request.image, self.task
        tile = (rows, columns) if rows is not None and columns is not None else None
        if task.takes_stored_pixels:
            pixels = image.stored if tile is None else image.stored[tile]
        else:
            pixels = image.pixels if tile is None else image.region(*tile)
        if task.wants_alpha:
            alpha = (
                image.alpha if image.alpha is not None else np.ones((image.height, image.width), np.float32)
            )
            rgb = pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2)
            pixels = np.dstack([rgb, alpha if tile is None else alpha[tile]])
        named: dict[str, np.ndarray | None] = {}
        for spec in task.extra_inputs:
            given = request.inputs.get(spec.name)
            if given is None:
                named[spec.name] = None
            elif tile is not None and spec.same_size:
                named[spec.name] = given.region(*tile)
            else:
                named[spec.name] = given.pixels
        return pixels, named

    def _preprocess(self, note: list[str], arguments: TaskArguments) -> torch.Tensor:
        pixels, named = arguments
        with _task_warnings(note):
            tensor = self.task.preprocess(pixels, **named)
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4 or tensor.shape[0] != 1:
            shape = getattr(tensor, "shape", type(tensor).__name__)
            raise TaskBugError(self.task.name, f"preprocess() returned {shape}, not a 1xCxHxW tensor")
        return tensor

    def _postprocess(self, note: list[str], output: torch.Tensor, arguments: TaskArguments) -> np.ndarray:
        pixels, named = arguments
        with _task_warnings(note):
            return np.asarray(self.task.postprocess(output, pixels, **named))

    def _finish(self, request: Request, output: np.ndarray, note: list[str]) -> Result:
        """Hold one output to the task's declarations, finish it (clipped, alpha put back) and
        save it where the request asks."""
        image, kind = request.image, self.task.output_kind
        self._check_result(image, output)
        # A task that takes the alpha has handled it: its output is final.
        shown = replace(image, alpha=None) if self.task.wants_alpha else image
        finished = _images.finish_result(output, shown, kind)
        saved = None
        if request.save_to is not None:
            saved = _images.save_result(request.save_to, finished, kind, overwrite=request.overwrite)
        return Result(finished, note, saved)

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


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**28 else f"{size / 2**20:.0f} MiB"


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be at least 1, got {batch_size!r}", argument="batch_size")
    return batch_size


# ── from what a user holds to requests, and back ───────────────────────────────────────────
def prepare_requests(
    task_class: type[Task],
    image: Any,
    inputs: Mapping[str, Any],
    *,
    output: str | Path | None = None,
    overwrite: bool = False,
) -> tuple[list[Request], _images.OutputSpec]:
    """Read the image(s) and the task's named ``inputs``, check them against the task's
    declarations and plan where results are saved: everything that can fail before the model
    runs. Returns the requests and how the inputs came (for :func:`deliver`)."""
    images, spec = _images.read_images(image)
    extras = read_inputs(task_class, images, inputs)
    targets: list[Path | None] = [None] * len(images)
    if output is not None:
        is_map = task_class.output_kind == "map"
        suffix = MAP_SUFFIX if is_map else RESULT_SUFFIX
        names = [
            f"{item.path.stem}{suffix}" if item.path is not None else f"image-{index:04d}{suffix}"
            for index, item in enumerate(images)
        ]
        targets = list(
            plan_outputs(
                output,
                [item.path for item in images],
                names,
                overwrite=overwrite,
                overwrite_hint="overwrite=True",
                suffixes=(MAP_SUFFIX,) if is_map else WRITABLE_SUFFIXES,
                also_read=[item.path for items in extras.values() for item in items if item.path is not None],
            )
        )
    requests = [
        Request(item, {name: values[index] for name, values in extras.items()}, targets[index], overwrite)
        for index, item in enumerate(images)
    ]
    return requests, spec


def deliver(results: Sequence[Result], spec: _images.OutputSpec, kind: str, *, stacklevel: int = 3) -> Any:
    """The results in the form the inputs came in, each task warning shown as a Python warning
    (once per message) pointing at the caller's caller (``stacklevel``)."""
    shown: list[str] = []
    for result in results:
        shown += [message for message in result.warnings if message not in shown]
    for message in shown:
        warnings.warn(message, UserWarning, stacklevel=stacklevel)
    return _images.finished_output([result.output for result in results], spec, kind)


def load(
    task: str,
    weights: WeightsArg = None,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    config_file: str | Path | None = None,
    tile: Tiling | int | bool | None = None,
    backend: str = DEFAULT_BACKEND,
    **overrides: Any,
) -> Pipeline:
    """Load a task with its weights into a reusable, callable :class:`Pipeline`.

    ``weights``: a registered name, a path or URL. ``None`` (or ``"default"``) loads the task's
    default weights from the catalogue, not a random init; ``"none"`` (or ``False``) builds the
    untrained model.
    ``config_file``: a TOML/JSON config file; keyword arguments override single config fields.
    ``tile``: the tile side for images larger than it (tasks that declare ``tiling`` only);
    ``None`` for the task's own, ``0``/``False`` to run every image whole.
    ``precision``: ``"auto"`` runs bf16 where the device computes it natively (a CPU with
    AVX512-BF16 or AMX, a CUDA GPU of compute capability 8.0+), else fp32; or ``"fp32"``,
    ``"bf16"``, ``"fp16"``. The pipeline's repr says which runs and why.
    ``backend``: what runs the forward pass: ``"torch"``, ``"onnxruntime"`` (fp32 on the CPU,
    exported on first use and cached), or one a plugin registers (see :mod:`imgzoo.backends`).
    """
    check_precision(precision, allowed=INFERENCE_PRECISIONS)
    runner = backend_class(backend)
    if isinstance(device, str):
        device = runner.choose_device(device)  # before any model is built
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
    chosen = runner(task_object, models, device=target, precision=precision, weights=located)
    return Pipeline(task_object, models, chosen, weights=located, tile=tile)
