"""Exporting a task's inference model to ONNX or TorchScript, checked against PyTorch.

What is exported is what a :class:`~imgzoo.Pipeline` runs between ``preprocess`` and
``postprocess``: ``task.forward(models, inputs)`` on the models of ``task.prepare_inference``,
in eval mode and fp32, with the batch, height and width left free. The graph has one input,
``input`` (NxCxHxW float32, what ``preprocess`` makes: a task's named inputs arrive stacked
into it, as they reach ``forward``), and one output, ``output``. Pre- and post-processing stay
the task's Python code. The file records where it came from: the task, its config (JSON), the
source weights' sha256 and the imgzoo version (ONNX ``metadata_props``, TorchScript
``_extra_files``; :func:`exported_metadata` reads either).

Every export is checked before the file is written: the exported model and PyTorch run on the
task's own preprocessing of random pictures of several sizes (two of them as one batch) and of
the bundled example pictures, and an export whose outputs differ by more than
:data:`TOLERANCE` is refused.

A standalone export (``standalone=True``, ``imgzoo export TASK --standalone``) writes the whole
of ``run()`` instead, from the task's :meth:`~imgzoo.Task.standalone_module`: one ONNX graph
whose input ``image`` is a uint8 HxWxC picture and whose output ``result`` is what ``run()``
returns for it, so that plain ONNX Runtime reproduces ``run()`` without imgzoo. It is checked
against ``run(precision="fp32")`` at :data:`STANDALONE_SIZES`, on 1- and 3-channel pictures:
at most :data:`STANDALONE_MAX_LEVELS` levels apart, and :data:`STANDALONE_MEAN_LEVELS` on average.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from imgzoo import __version__
from imgzoo import images as _images
from imgzoo.backends.base import Backend
from imgzoo.backends.pytorch import TorchBackend
from imgzoo.errors import ExportError, OutputError, OutputExistsError, ZooError
from imgzoo.files import remove_abandoned, replaced_atomically, temporary_sibling
from imgzoo.outputs import same_file
from imgzoo.pipeline import Pipeline, Request
from imgzoo.weights import sha256_file

if TYPE_CHECKING:
    from imgzoo.pipeline import WeightsArg

__all__ = [
    "EXPORT_FORMATS",
    "STANDALONE_MAX_LEVELS",
    "STANDALONE_MEAN_LEVELS",
    "STANDALONE_SIZES",
    "TOLERANCE",
    "ExportCheck",
    "ExportReport",
    "export",
    "export_pipeline",
    "exported_metadata",
]

EXPORT_FORMATS = ("onnx", "torchscript")

TOLERANCE = 1e-4
"""The largest difference an export may show from PyTorch, per output value, relative to the
output's own scale (``max(1, max |output|)``: outputs in [0, 1] or [-1, 1] compare absolutely).

Both sides compute in fp32, where one rounding is 6e-8 of the value; the exported graph sums
the same products in another order (another convolution algorithm), which leaves differences
of 1e-7 to 3e-5 on the built-in models (edges2photo on a 512x512 photo: 8.5e-6 on one thread,
3.2e-5 on two, whose kernels sum in yet another order), growing slowly with depth and size.
1e-4 leaves three times that for deeper models, and is still 1/40 of an 8-bit step (1/255),
so a saved picture changes by at most one level where rounding falls on a boundary. A real
export fault (an operation traced as a constant, a wrong padding) moves outputs by 1e-2 or
more."""

OPSET = 17
"""The ONNX opset: the oldest with every operation the built-in models use (LayerNorm aside,
none needs newer), read by any ONNX Runtime of the last three years."""

INPUT_NAME, OUTPUT_NAME = "input", "output"
STANDALONE_INPUT, STANDALONE_OUTPUT = "image", "result"

STANDALONE_SIZES = ((96, 128), (257, 191), (512, 384))
"""(height, width) of the pictures a standalone export is checked on: one smaller than the
built-in tasks' working sizes, one with odd sides, one larger."""
STANDALONE_MAX_LEVELS = 2
"""The most a standalone export's uint8 result may differ from ``run()``'s, in levels (of 255):
the graph redoes OpenCV's 8-bit conversions in float, which round differently at boundaries."""
STANDALONE_MEAN_LEVELS = 0.5
"""The most the mean absolute difference from ``run()``'s result may be, in levels."""
METADATA_PREFIX = "imgzoo."
_TORCHSCRIPT_METADATA = "imgzoo.json"

# Sizes (height, width) of the random pictures the check runs: one landscape, one portrait with
# odd sides, and one larger, so that a shape baked into the graph shows. The first runs as a
# batch of two different pictures.
_RANDOM_SIZES = ((48, 64), (67, 45), (200, 300))
_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_EXAMPLE_PICTURES = ("minifigs/minifig-0.png", "photos/astronaut.jpg")


@dataclass(frozen=True)
class ExportCheck:
    """One comparison of the exported model with PyTorch."""

    input: str
    """What ran: ``"random 64x48 (batch of 2)"``, or a picture's file name."""
    shape: tuple[int, ...]
    """The model input's shape (NxCxHxW, after the task's ``preprocess``)."""
    max_abs_difference: float
    """The largest absolute difference of an output value."""
    scale: float
    """``max(1, max |output|)``: what the difference is compared with, times the tolerance."""
    mean_abs_difference: float | None = None
    """The mean absolute difference (a standalone export's check: in levels of its uint8 result)."""


@dataclass
class ExportReport:
    """What :func:`export` wrote and how closely it reproduces PyTorch."""

    file: Path
    format: str
    tolerance: float
    checks: list[ExportCheck] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    """What the file records about its origin (task, config, weights' sha256, versions)."""
    standalone: bool = False
    """Whether the file holds the whole of ``run()`` (checked against it, in levels) rather than
    the forward pass alone (checked against PyTorch's)."""

    @property
    def max_abs_difference(self) -> float:
        return max((check.max_abs_difference for check in self.checks), default=0.0)

    def __str__(self) -> str:
        size = self.file.stat().st_size / 1e6 if self.file.is_file() else 0.0
        lines = [
            f"exported {self.metadata.get('imgzoo.task', '?')} to {self.file} ({self.format}, {size:.1f} MB)"
        ]
        for check in self.checks:
            shape = "x".join(map(str, check.shape))
            if check.mean_abs_difference is None:
                difference = f"max abs difference {check.max_abs_difference:.2e}"
            else:
                difference = (
                    f"max abs difference {check.max_abs_difference:.0f}, mean {check.mean_abs_difference:.4f}"
                )
            lines.append(f"  {check.input:<34} input {shape:<16} {difference}")
        if self.standalone:
            lines.append(
                f"  every result within {STANDALONE_MAX_LEVELS} levels of run()'s (fp32), "
                f"{STANDALONE_MEAN_LEVELS} on average; input {STANDALONE_INPUT!r} uint8 HxWxC, "
                f"output {STANDALONE_OUTPUT!r} uint8"
            )
        else:
            lines.append(f"  every output within {self.tolerance:.0e} of PyTorch's (fp32 both)")
        return "\n".join(lines)


def export(
    task: str,
    weights: WeightsArg = None,
    *,
    format: str = "onnx",
    output: str | os.PathLike[str],
    config_file: str | Path | None = None,
    overwrite: bool = False,
    check_images: Sequence[Any] | None = None,
    standalone: bool = False,
    **overrides: Any,
) -> ExportReport:
    """Export ``task``'s inference model with its ``weights`` (as :func:`imgzoo.load` takes them)
    to ``output`` as ``format`` (``"onnx"`` or ``"torchscript"``), checked against PyTorch on
    random pictures and on ``check_images`` (default: the bundled example pictures, where the
    source tree has them). Refuses, with an :class:`~imgzoo.ExportError`, a model that cannot
    be traced or whose export differs by more than :data:`TOLERANCE`. An existing ``output`` is
    replaced only with ``overwrite=True``. ``config_file``: a TOML/JSON config file, as
    :func:`imgzoo.load` reads it. ``standalone``: the whole of ``run()`` on a uint8 picture as one
    ONNX graph (see the module's documentation), checked against ``run(precision="fp32")`` on
    ``check_images`` resized to :data:`STANDALONE_SIZES`.
    """
    from imgzoo.pipeline import load

    check_format(format, task, standalone=standalone)
    target = Path(output)
    if target.exists() and not overwrite:
        raise OutputExistsError(
            f"{target} exists: pass --overwrite (overwrite=True) to replace it, or choose another file",
            path=target,
        )
    if format == "onnx":
        from imgzoo.backends.onnx_session import require_onnxruntime, require_package

        require_package("onnx", "to export to ONNX")
        require_onnxruntime("to check an ONNX export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no weights: untrained": exporting one is allowed
        pipeline = load(task, weights, device="cpu", precision="fp32", config_file=config_file, **overrides)
    return export_pipeline(pipeline, target, format=format, check_images=check_images, standalone=standalone)


def check_format(format: str, task: str, *, standalone: bool = False) -> None:
    if format not in EXPORT_FORMATS:
        raise ExportError(
            f"unknown export format {format!r} for task {task!r}: use {' or '.join(EXPORT_FORMATS)}",
            task=task,
            format=format,
        )
    if standalone and format != "onnx":
        raise ExportError(
            f"task {task!r}: a standalone export writes ONNX only, not {format}", task=task, format=format
        )


def export_pipeline(
    pipeline: Pipeline,
    output: str | os.PathLike[str],
    *,
    format: str = "onnx",
    check_images: Sequence[Any] | None = None,
    standalone: bool = False,
) -> ExportReport:
    """Export a CPU pipeline's inference model (or with ``standalone``, the whole of its
    ``run()``) to ``output`` (replaced atomically, and only once the check has passed); see
    :func:`export`."""
    task = pipeline.task
    check_format(format, task.name, standalone=standalone)
    if not isinstance(pipeline.backend, TorchBackend) or pipeline.device.type != "cpu":
        raise ExportError(
            f"task {task.name!r}: export traces the PyTorch model on the CPU; load the pipeline with "
            "device='cpu' and backend='torch'",
            task=task.name,
            format=format,
        )
    target = Path(output)
    if (
        pipeline.weights is not None
        and pipeline.weights.path is not None
        and same_file(pipeline.weights.path, target)
    ):
        raise OutputError(
            f"the export would replace its own weights {target}: choose another output file", path=target
        )
    if standalone:
        return _export_standalone(pipeline, target, check_images)
    samples = list(_check_inputs(pipeline, check_images))
    module = _inference_module(pipeline, samples[0][1])
    references = [_reference(module, inputs, format) for _, inputs in samples]
    metadata = origin_metadata(pipeline)
    remove_abandoned(target.parent, kind="part")  # the partial exports of killed runs
    part = temporary_sibling(target, kind="part")
    try:
        # The export replaces ``target`` only once it has reproduced the model.
        with replaced_atomically(target, temporary=part):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if format == "onnx":
                    _export_onnx(module, samples[0][1], part, metadata, task.name)
                else:
                    _export_torchscript(module, samples[0][1], part, metadata, task.name)
            run_exported = _loader(format)(part)
            checks = []
            for (label, inputs), reference in zip(samples, references, strict=True):
                exported = run_exported(inputs)
                checks.append(_compare(label, inputs, reference, exported, caught, task.name, format))
    except OSError as error:
        raise ExportError(
            f"task {task.name!r}: could not write {target}: {error.strerror or error}",
            task=task.name,
            format=format,
        ) from error
    return ExportReport(target, format, TOLERANCE, checks, metadata)


def origin_metadata(pipeline: Pipeline) -> dict[str, str]:
    """What an exported file records about where it came from, as strings."""
    weights = pipeline.weights
    digest = ""
    if weights is not None:
        digest = weights.sha256 or (sha256_file(weights.path) if weights.path is not None else "")
    return {
        "imgzoo.task": pipeline.task.name,
        "imgzoo.config": json.dumps(pipeline.config.model_dump(mode="json"), sort_keys=True),
        "imgzoo.weights": (weights.name or "") if weights is not None else "untrained",
        "imgzoo.weights_sha256": digest,
        "imgzoo.version": __version__,
        "imgzoo.torch_version": torch.__version__,
        "imgzoo.input": INPUT_NAME,
        "imgzoo.output": OUTPUT_NAME,
    }


def exported_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``imgzoo.*`` metadata of an exported ONNX or TorchScript file."""
    source = Path(path)
    if source.suffix == ".onnx":
        from imgzoo.backends.onnx_session import open_session

        stored = open_session(source).get_modelmeta().custom_metadata_map
    else:
        files = {_TORCHSCRIPT_METADATA: ""}
        _load_torchscript(source, files)
        stored = json.loads(files[_TORCHSCRIPT_METADATA] or "{}")
    return {key: value for key, value in stored.items() if key.startswith(METADATA_PREFIX)}


# ── what is exported ─────────────────────────────────────────────────────────────────────────


class _TaskForward(torch.nn.Module):
    """``task.forward(models, inputs)`` as one module, holding only the models it reads."""

    def __init__(self, task: Any, models: Mapping[str, torch.nn.Module]) -> None:
        super().__init__()
        self.task = task
        self.models = torch.nn.ModuleDict(dict(models))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.task.forward(self.models, inputs).float()


class _Reads(Mapping[str, torch.nn.Module]):
    """The models, noting which of them are read."""

    def __init__(self, models: Mapping[str, torch.nn.Module]) -> None:
        self.models = models
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> torch.nn.Module:
        self.read.add(name)
        return self.models[name]

    def __iter__(self) -> Iterator[str]:
        self.read.update(self.models)
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)


def _inference_module(pipeline: Pipeline, example: torch.Tensor) -> _TaskForward:
    """The pipeline's forward pass as a module, with the models it reads and no others (a GAN's
    discriminator stays out of the file)."""
    assert isinstance(pipeline.backend, TorchBackend)
    models = pipeline.backend.inference_models
    reads = _Reads(models)
    with torch.inference_mode():
        pipeline.task.forward(reads, example)
    return _TaskForward(pipeline.task, {name: models[name] for name in sorted(reads.read)})


def _reference(module: _TaskForward, inputs: torch.Tensor, format: str) -> torch.Tensor:
    with torch.inference_mode():
        first, second = module(inputs), module(inputs)
    if not torch.equal(first, second):
        name = module.task.name
        raise ExportError(
            f"task {name!r} cannot be exported: its forward pass gives different outputs for the same input "
            "(random operations such as dropout at inference); export it with them off",
            task=name,
            format=format,
        )
    return first


class _Recorder(Backend):
    """A backend that keeps each batch it is given, then runs it on another: the model inputs
    a pipeline makes, recorded as they reach the forward pass."""

    name = "recorder"

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.task, {}, device=inner.device, precision=inner.precision, weights=None)
        self.inner = inner
        self.batches: list[torch.Tensor] = []

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        self.batches.append(batch)
        return self.inner.forward(batch)


def _check_inputs(
    pipeline: Pipeline, check_images: Sequence[Any] | None
) -> Iterator[tuple[str, torch.Tensor]]:
    """(label, model input) for each check: random pictures, then the real ones, each run
    through the pipeline (whole, untiled) so that the graph sees what the task's own
    preprocessing gives its forward pass."""
    recorder = _Recorder(pipeline.backend)
    recording = Pipeline(pipeline.task, pipeline.models, recorder, weights=pipeline.weights, tile=0)
    rng = np.random.default_rng(0)

    def recorded(requests: list[Request]) -> list[torch.Tensor]:
        recording.run(requests, batch_size=len(requests))
        batches, recorder.batches = recorder.batches, []
        return batches

    for number, (height, width) in enumerate(_RANDOM_SIZES):
        count = 2 if number == 0 else 1
        requests = [_request(pipeline, _random_picture(rng, height, width), rng) for _ in range(count)]
        for batch in recorded(requests):
            label = f"random {width}x{height}" + (f" (batch of {len(batch)})" if len(batch) > 1 else "")
            yield label, batch
    if check_images is None:
        check_images = [_EXAMPLES / name for name in _EXAMPLE_PICTURES if (_EXAMPLES / name).is_file()]
    for item in check_images:
        pictures, _ = _images.read_images(item)
        for picture in pictures:
            label = picture.path.name if picture.path is not None else picture.source
            for batch in recorded([_request(pipeline, picture, rng)]):
                yield label, batch


def _random_picture(rng: np.random.Generator, height: int, width: int) -> _images.Image:
    pictures, _ = _images.read_images(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return pictures[0]


def _request(pipeline: Pipeline, picture: _images.Image, rng: np.random.Generator) -> Request:
    """``picture`` with random named inputs of its size."""
    named = {}
    for spec in pipeline.task.extra_inputs:
        channels = 1 if spec.channels == 1 else 3
        values = (rng.random((picture.height, picture.width, channels)) < 0.5).astype(np.float32)
        named[spec.name] = _images.read_images(values)[0][0]
    return Request(picture, named)


# ── the standalone export ────────────────────────────────────────────────────────────────────


def _export_standalone(pipeline: Pipeline, target: Path, check_images: Sequence[Any] | None) -> ExportReport:
    """The whole of the pipeline's ``run()`` as one ONNX graph, checked against it."""
    task = pipeline.task
    name = task.name
    if task.extra_inputs:
        named = ", ".join(spec.name for spec in task.extra_inputs)
        raise ExportError(
            f"{name}: a standalone export takes the picture alone, and the task also takes {named}",
            task=name,
            format="onnx",
        )
    assert isinstance(pipeline.backend, TorchBackend)
    module = task.standalone_module(pipeline.backend.inference_models)
    if module is None:
        raise ExportError(
            f"{name}: standalone export needs the task's standalone_module(), its processing in torch "
            "operations; its preprocess and postprocess are Python code (export the network alone "
            "without --standalone)",
            task=name,
            format="onnx",
        )
    pictures = list(_standalone_pictures(task, check_images))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the task's notes on a picture: run() returns as ever
        references = [_run_result(pipeline, picture) for _, picture in pictures]
    metadata = {
        **origin_metadata(pipeline),
        "imgzoo.input": STANDALONE_INPUT,
        "imgzoo.output": STANDALONE_OUTPUT,
        "imgzoo.standalone": "run() on a uint8 HxWxC picture, its uint8 HxWxC result",
    }
    example = torch.from_numpy(pictures[0][1])
    axes = {
        STANDALONE_INPUT: {0: "height", 1: "width", 2: "channels"},
        STANDALONE_OUTPUT: {0: "height", 1: "width"},
    }
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with replaced_atomically(target, temporary=part):
            module.eval()
            with torch.inference_mode(), warnings.catch_warnings():
                # The exporter's notes on sizes and constant folding: the check below is the judge.
                warnings.simplefilter("ignore")
                _export_onnx(module, example, part, metadata, name, dynamic_axes=axes)
            from imgzoo.backends.onnx_session import open_session

            session = open_session(part)
            checks = [
                _compare_results(
                    label, picture, reference, session.run(None, {STANDALONE_INPUT: picture})[0], name
                )
                for (label, picture), reference in zip(pictures, references, strict=True)
            ]
    except OSError as error:
        raise ExportError(
            f"task {name!r}: could not write {target}: {error.strerror or error}", task=name, format="onnx"
        ) from error
    return ExportReport(target, "onnx", float(STANDALONE_MAX_LEVELS), checks, metadata, standalone=True)


def _standalone_pictures(task: Any, check_images: Sequence[Any] | None) -> Iterator[tuple[str, np.ndarray]]:
    """(label, uint8 HxWxC picture) for each check: a source picture (the check images in turn,
    else random ones) resized to each of :data:`STANDALONE_SIZES`, with its 3 channels and as
    the 1-channel picture the task's ``degrade`` makes of it (its first channel, without one)."""
    if check_images is None:
        check_images = [_EXAMPLES / name for name in _EXAMPLE_PICTURES if (_EXAMPLES / name).is_file()]
    sources = [(picture.path.name if picture.path is not None else picture.source, picture.pixels)
               for item in check_images for picture in _images.read_images(item)[0]]  # fmt: skip
    rng = np.random.default_rng(0)
    rgb: np.ndarray
    one_channel: np.ndarray
    for number, (height, width) in enumerate(STANDALONE_SIZES):
        if sources:
            label, pixels = sources[number % len(sources)]
            shrunk = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA).reshape(
                height, width, -1
            )
            rgb = shrunk if shrunk.shape[2] == 3 else np.repeat(shrunk, 3, axis=2)
        else:
            label, rgb = "random", rng.random((height, width, 3), dtype=np.float32)
        try:
            degraded = task.degrade(rgb, rng)
            given = degraded[0] if isinstance(degraded, tuple) else degraded
            one_channel = np.asarray(given, dtype=np.float32)[..., :1]
        except NotImplementedError:
            one_channel = rgb[..., :1]
        for picture in (rgb, one_channel):
            channels = picture.shape[2]
            yield (
                f"{label} {width}x{height}, {channels} channel{'s' * (channels > 1)}",
                _images.to_uint8(picture),
            )


def _run_result(pipeline: Pipeline, picture: np.ndarray) -> np.ndarray:
    """What ``run()`` returns for a uint8 numpy picture, on this pipeline."""
    from imgzoo.pipeline import deliver, prepare_requests

    requests, spec = prepare_requests(type(pipeline.task), picture, {})
    return np.asarray(deliver(pipeline.run(requests), spec, pipeline.task.output_kind))


def _compare_results(
    label: str, picture: np.ndarray, reference: np.ndarray, exported: np.ndarray, task: str
) -> ExportCheck:
    where = f"task {task!r}: the standalone export"
    if exported.shape != reference.shape or exported.dtype != reference.dtype:
        raise ExportError(
            f"{where} returns {exported.dtype} {exported.shape} on {label}, run() {reference.dtype} "
            f"{reference.shape}",
            task=task,
            format="onnx",
        )
    difference = np.abs(exported.astype(np.int16) - reference.astype(np.int16))
    largest, mean = float(difference.max()), float(difference.mean())
    if largest > STANDALONE_MAX_LEVELS or mean > STANDALONE_MEAN_LEVELS:
        raise ExportError(
            f"{where} differs from run(precision='fp32') on {label} by up to {largest:.0f} levels, "
            f"{mean:.2f} on average (at most {STANDALONE_MAX_LEVELS} and {STANDALONE_MEAN_LEVELS} "
            "allowed): a step of its standalone_module() does not reproduce the task's processing",
            task=task,
            format="onnx",
        )
    return ExportCheck(label, picture.shape, largest, 1.0, mean)


# ── the formats ──────────────────────────────────────────────────────────────────────────────


# The TorchScript-based exporter: torch 2.9+ defaults to the torch.export one, which needs
# onnxscript; before 2.5 there is no choice to make (and no `dynamo` keyword to pass).
_HAS_DYNAMO_SWITCH = "dynamo" in inspect.signature(torch.onnx.export).parameters
_TORCHSCRIPT_EXPORTER: dict[str, Any] = {"dynamo": False} if _HAS_DYNAMO_SWITCH else {}


def _export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    part: Path,
    metadata: Mapping[str, str],
    task: str,
    *,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
) -> None:
    """Write ``module`` traced on ``example`` to ``part``; ``dynamic_axes``: the free axes of its
    one input and one output, by name (default: the forward pass's, ``input`` and ``output``)."""
    from imgzoo.backends.onnx_session import require_package

    onnx = require_package("onnx", "to export to ONNX")
    if dynamic_axes is None:
        output_rank = _output_rank(module, example)
        output_axes = {0: "batch", **{axis: f"output_{axis}" for axis in range(2, output_rank)}}
        dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: output_axes}
    input_name, output_name = dynamic_axes
    try:
        torch.onnx.export(
            module,
            (example,),
            str(part),
            **_TORCHSCRIPT_EXPORTER,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
        )
    except ZooError:
        raise
    except Exception as error:  # the exporter's own errors have no common base
        raise _trace_failure(error, task, "onnx") from error
    graph = onnx.load(str(part))
    onnx.helper.set_model_props(graph, dict(metadata))
    onnx.save(graph, str(part))


def _export_torchscript(
    module: _TaskForward, example: torch.Tensor, part: Path, metadata: Mapping[str, str], task: str
) -> None:
    try:
        traced = torch.jit.trace(module, (example,), check_trace=False)
    except ZooError:
        raise
    except Exception as error:
        raise _trace_failure(error, task, "torchscript") from error
    torch.jit.save(traced, str(part), _extra_files={_TORCHSCRIPT_METADATA: json.dumps(dict(metadata))})


def _output_rank(module: torch.nn.Module, example: torch.Tensor) -> int:
    with torch.inference_mode():
        return int(module(example[:1]).ndim)


def _loader(format: str) -> Callable[[Path], Callable[[torch.Tensor], torch.Tensor]]:
    if format == "onnx":
        from imgzoo.backends.onnx_session import OnnxRuntimeModel

        return OnnxRuntimeModel

    def load_torchscript(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        loaded = _load_torchscript(path)

        def run(inputs: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return loaded(inputs)

        return run

    return load_torchscript


def _load_torchscript(path: Path, extra_files: dict[str, Any] | None = None) -> Any:
    with warnings.catch_warnings():
        # Newer torch deprecates TorchScript in favour of torch.export; the format was asked for.
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)


# ── the check ────────────────────────────────────────────────────────────────────────────────


def _compare(
    label: str,
    inputs: torch.Tensor,
    reference: torch.Tensor,
    exported: torch.Tensor,
    trace_warnings: list[warnings.WarningMessage],
    task: str,
    format: str,
) -> ExportCheck:
    where = f"task {task!r} cannot be exported to {format}"
    if tuple(exported.shape) != tuple(reference.shape):
        raise ExportError(
            f"{where}: on {label} the export's output has shape {tuple(exported.shape)}, PyTorch's "
            f"{tuple(reference.shape)}{_baked_in(trace_warnings)}",
            task=task,
            format=format,
        )
    difference = float((exported.float() - reference).abs().max()) if reference.numel() else 0.0
    scale = max(1.0, float(reference.abs().max())) if reference.numel() else 1.0
    if not difference <= TOLERANCE * scale:  # written so that NaN fails too
        raise ExportError(
            f"{where}: on {label} its outputs differ from PyTorch's by up to {difference:.2e} (tolerance "
            f"{TOLERANCE * scale:.0e}){_baked_in(trace_warnings)}",
            task=task,
            format=format,
        )
    return ExportCheck(label, tuple(inputs.shape), difference, scale)


def _baked_in(trace_warnings: list[warnings.WarningMessage]) -> str:
    """Why a trace may not reproduce the model: the first value it recorded as a constant."""
    for caught in trace_warnings:
        if issubclass(caught.category, torch.jit.TracerWarning):
            problem = str(caught.message).split(". ")[0].strip().rstrip(".")
            return (
                f"; at {Path(caught.filename).name}:{caught.lineno} the forward pass does this: {problem}, "
                "so the trace recorded that value as a constant (keep values and branches that depend on "
                "the input's data as tensor operations)"
            )
    return ""


def _trace_failure(error: Exception, task: str, format: str) -> ExportError:
    """One line naming the operation a trace or an export failed on."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    operator = re.search(r"operator '([\w:.]+)'", text)
    if operator:
        return ExportError(
            f"task {task!r} cannot be exported to {format}: its forward pass uses {operator[1]}, which has "
            f"no ONNX form at opset {OPSET}; express it with other operations, or try --format torchscript",
            task=task,
            format=format,
        )
    return ExportError(
        f"task {task!r} cannot be exported to {format}: tracing its forward pass failed: {text}",
        task=task,
        format=format,
    )
