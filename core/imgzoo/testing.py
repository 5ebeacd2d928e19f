"""The task contract as pytest helpers: what a plugin author runs to know their task works in the zoo.

    # tests/test_mytask.py of a plugin package
    from imgzoo.testing import TaskContract

    class TestMyTask(TaskContract):
        task = "mytask"
        overrides = {"width": 8}        # optional, on top of the task's own test_overrides

Each check below becomes one test of that class. Or call them yourself: ``check_task("mytask")``
runs them all, and each ``check_*`` function runs one. The checks, in order:

    check_registered          listed, with a description; its registry entries are valid
    check_config              the config is strict, fully described, has defaults and survives JSON
    check_forward             preprocess -> forward -> postprocess at square and odd sizes, gray and colour,
                              giving the size, channels and kind (image or map) the task declares
    check_weights_round_trip  weights saved as safetensors load into fresh models and give the same outputs
    check_run                 imgzoo.load() runs on gray, RGB, RGBA and odd-sized images, giving output_size()
    check_training_step       one training step on a tiny batch lowers the loss
    check_trainer             two steps through imgzoo's Trainer; the exported weights load and run,
                              and two evaluations of them give identical figures
    check_registered_weights  every shipped weights file matches its sha256, loads and runs
    check_listing_is_light    listing the task imports no torch (plugins installed as packages)

Every check takes the task name and ``overrides``: config values merged over the task's
:attr:`~imgzoo.Task.test_overrides`. Use them to make the models tiny and ``image_size`` small,
so that the whole contract runs in seconds on a CPU. A broken contract raises
:class:`~imgzoo.TaskContractError` (a ``ZooError`` and an ``AssertionError``, so pytest reports a
failed assertion) naming the task and what is wrong. The checks
read what the task declares (``output_size``, ``output_kind``, ``output_channels``,
``extra_inputs``: synthetic masks and pictures are made for its named inputs); a check that
cannot apply raises :class:`CheckNotApplicable` with the reason, which ``TaskContract`` reports
as a pytest skip and :func:`check_task` returns.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import ValidationError

from imgzoo import catalogue, plugins
from imgzoo.backends.pytorch import TorchBackend
from imgzoo.config import build_config
from imgzoo.data.base import Sample
from imgzoo.data.transforms import PairTransform
from imgzoo.errors import ArgumentError, ResultError, TaskBugError, TaskContractError
from imgzoo.images import Image, luma
from imgzoo.pipeline import Pipeline, Request, load
from imgzoo.task import Task, TaskConfig
from imgzoo.weights import (
    is_remote_source,
    load_weights,
    resolve_weights_file,
    save_weights,
    state_tensors,
)

__all__ = [
    "CHECKS",
    "Check",
    "CheckNotApplicable",
    "ImmediateStepContext",
    "TaskContract",
    "TaskContractError",
    "check_config",
    "check_forward",
    "check_listing_is_light",
    "check_registered",
    "check_registered_weights",
    "check_run",
    "check_task",
    "check_trainer",
    "check_training_step",
    "check_weights_round_trip",
    "synthetic_image",
    "synthetic_inputs",
    "task_config",
]

Overrides = Mapping[str, Any] | None
Check = Callable[[str, Overrides], None]
"""The signature of every check: the task's name, and config overrides for the test."""


class CheckNotApplicable(Exception):
    """A check that does not apply to this task (no local weights to verify, say); the
    message says why."""


def _require(condition: object, task: str, problem: str) -> None:
    if not condition:
        raise TaskContractError(f"task {task!r}: {problem}", task=task)


# ── helpers for plugin tests ──────────────────────────────────────────────────────────────────
def synthetic_image(height: int, width: int, channels: int = 3, *, seed: int = 0) -> np.ndarray:
    """An HxWxC float32 image in [0, 1] with gradients, flat patches and sharp edges: enough
    structure for any task to have something to work on. The same seed gives the same image."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    columns = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    start, slope_y, slope_x = (rng.uniform(0, 1, 3).astype(np.float32) for _ in range(3))
    image = np.clip(start * 0.5 + slope_y * rows * 0.4 + slope_x * columns * 0.4, 0, 1)
    for _ in range(3):
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        bottom = min(height, top + 1 + int(rng.integers(0, max(1, height // 2))))
        right = min(width, left + 1 + int(rng.integers(0, max(1, width // 2))))
        image[top:bottom, left:right] = rng.uniform(0, 1, 3).astype(np.float32)
    if channels == 1:
        return np.ascontiguousarray(luma(image))
    return np.ascontiguousarray(image)


def synthetic_inputs(task: type[Task] | Task, height: int, width: int, *, seed: int = 0) -> dict[str, Any]:
    """One synthetic value per named input the task declares, at ``height`` x ``width``: a 0/1
    mask for a one-channel input, a picture otherwise."""
    values: dict[str, Any] = {}
    for offset, spec in enumerate(task.extra_inputs):
        if spec.channels == 1:
            pattern = synthetic_image(height, width, 1, seed=seed + 50 + offset)
            values[spec.name] = (pattern > float(np.median(pattern))).astype(np.float32)
        else:
            values[spec.name] = synthetic_image(height, width, 3, seed=seed + 50 + offset)
    return values


class ImmediateStepContext:
    """A minimal :class:`imgzoo.StepContext` for unit tests of ``training_step``.

    Each ``optimize(name, loss)`` backpropagates ``loss`` into that optimizer's parameters only
    (as the trainer does) and steps it at once: no accumulation, loss scaling or clipping.
    ``calls`` lists the optimizers stepped, in order, since it was last cleared.
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        self.optimizers = dict(optimizers)
        self.step = 0
        self.calls: list[str] = []

    def optimize(self, optimizer: str, loss: torch.Tensor) -> torch.Tensor:
        if optimizer not in self.optimizers:
            raise TaskContractError(
                f"training_step() asked to optimize {optimizer!r}, but configure_optimizers() "
                f"made {sorted(self.optimizers)}"
            )
        chosen = self.optimizers[optimizer]
        parameters = [p for group in chosen.param_groups for p in group["params"] if p.requires_grad]
        torch.autograd.backward(loss, inputs=parameters)
        chosen.step()
        chosen.zero_grad(set_to_none=True)
        self.calls.append(optimizer)
        return loss.detach()


def task_config(name: str, overrides: Overrides = None) -> TaskConfig:
    """The task's config with its ``test_overrides`` and then ``overrides`` applied."""
    task_class = plugins.get_task_class(name)
    config = build_config(
        task_class.Config, task=name, overrides={**task_class.test_overrides, **(overrides or {})}
    )
    assert isinstance(config, TaskConfig)  # build_config validated it with task_class.Config
    return config


# ── the checks ────────────────────────────────────────────────────────────────────────────────
def check_registered(name: str, overrides: Overrides = None) -> None:
    """The task is listed under its name, with a description, and its registry entries are valid."""
    failures = "; ".join(f"{info.name}: {info.error}" for info in plugins.load_errors())
    _require(
        name in catalogue.list_tasks(),
        name,
        "is not registered: is its plugin installed (pip install -e .) or registered with "
        f"imgzoo.register_plugin()? Installed tasks: {catalogue.list_tasks()}"
        + (f". Plugins that failed: {failures}" if failures else ""),
    )
    task_class = plugins.get_task_class(name)
    _require(task_class.name == name, name, f"{task_class.__qualname__}.name is {task_class.name!r}")
    info = catalogue.task_info(name)  # raises on a malformed registry entry
    _require(
        info.description.strip(), name, "has no description (set `description` in its declaration or class)"
    )


def check_config(name: str, overrides: Overrides = None) -> None:
    """The config forbids unknown keys, describes every field, builds from its defaults alone and
    survives the JSON round trip that weights metadata puts it through."""
    config_class = plugins.get_task_class(name).Config
    _require(
        config_class.model_config.get("extra") == "forbid",
        name,
        f"{config_class.__qualname__} must forbid unknown keys (model_config extra='forbid', "
        "as imgzoo.TaskConfig sets): a misspelled --set would otherwise be ignored",
    )
    undescribed = [field for field, info in config_class.model_fields.items() if not info.description]
    _require(
        not undescribed,
        name,
        f"config field(s) {undescribed} have no description: use Field(default, description=...)",
    )
    try:
        default = config_class()
    except ValidationError as error:
        missing = [".".join(map(str, problem["loc"])) for problem in error.errors()]
        raise TaskContractError(
            f"task {name!r}: the config must build from defaults alone (imgzoo.run passes no "
            f"settings); give field(s) {missing} a default",
            task=name,
        ) from None
    json.dumps(config_class.model_json_schema())  # `imgzoo info --schema` prints it
    for config in (default, task_config(name, overrides)):
        stored = json.loads(json.dumps(config.model_dump(mode="json")))
        _require(
            config_class.model_validate(stored) == config,
            name,
            f"config {stored} does not read back equal from JSON (weights metadata stores it so)",
        )
    try:
        config_class.model_validate({"no_such_setting_": 1})
    except ValidationError:
        pass
    else:
        raise TaskContractError(f"task {name!r}: the config accepted an unknown key", task=name)


def check_forward(name: str, overrides: Overrides = None) -> None:
    """Fresh models run on images of the working size and of odd sizes, gray and colour (with
    synthetic values for the task's named inputs), and ``postprocess`` returns finite results of
    the declared ``output_size``, channels and kind (an "image" within [0, 1])."""
    task, models = _fresh_task(name, overrides)
    size = task.config.image_size
    shapes = [(size, size, 3), (size + 7, 2 * size - 5, 3), (size // 2 + 3, size + 1, 1)]
    with torch.no_grad():
        for index, shape in enumerate(shapes):
            image = synthetic_image(*shape, seed=index)
            result = _infer(task, models, image, seed=index)
            expected = tuple(task.output_size(shape[0], shape[1]))
            channels = (task.output_channels,) if task.output_channels else (1, 3, 4)
            _require(
                result.ndim == 3
                and result.shape[:2] == expected
                and (task.output_kind == "map" or result.shape[2] in channels),
                name,
                f"postprocess() returned shape {result.shape} for a {shape} image: it must return "
                f"HxWxC with (H, W) = output_size() = {expected}"
                + ("" if task.output_kind == "map" else f" and C in {channels}"),
            )
            _require(
                task.output_kind == "map" or (result.min() >= -1e-3 and result.max() <= 1 + 1e-3),
                name,
                f"postprocess() returned values outside [0, 1] for a {shape} image (declare "
                "output_kind = 'map' for outputs that are not pictures)",
            )


def check_weights_round_trip(name: str, overrides: Overrides = None) -> None:
    """Every model, saved with the metadata the trainer writes, loads with ``imgzoo.load`` into
    fresh models that hold the same tensors and give the same outputs; so does an fp16 file."""
    task, models = _fresh_task(name, overrides)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        # Nudge every parameter, so layers initialised to zero (or alike) are told apart too.
        for model in models.values():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.01)
    tensors: dict[str, torch.Tensor] = {}
    for role, model in models.items():
        tensors.update(state_tensors(model, prefix=role))
    metadata = {"task": name, "config": task.config.model_dump(mode="json")}
    image = synthetic_image(task.config.image_size + 3, task.config.image_size, seed=2)
    for model in models.values():
        model.eval()
    with torch.no_grad():
        expected = _infer(task, models, image, seed=2)
    with tempfile.TemporaryDirectory(prefix="imgzoo-contract-") as folder:
        for dtype, tolerance in ((None, 1e-5), (torch.float16, 2e-2)):
            path = Path(folder) / f"{name}-{dtype}.safetensors"
            save_weights(path, tensors, metadata=metadata, dtype=dtype)
            pipeline = load(name, weights=path, device="cpu")
            stored, _ = load_weights(path)
            for role, model in pipeline.models.items():
                for key, value in state_tensors(model, prefix=role).items():
                    _require(
                        torch.allclose(value.float(), stored[key].float()),
                        name,
                        f"tensor {key!r} differs after loading {path.name}",
                    )
            with torch.no_grad():
                result = _infer(pipeline.task, pipeline.models, image, seed=2)
            error = float(np.abs(result - expected).max())
            _require(
                error <= tolerance,
                name,
                f"outputs differ by {error:.3g} after a save/load round trip of {dtype or 'fp32'} "
                "weights: does build_models() depend on something that is not in the config?",
            )


def check_run(name: str, overrides: Overrides = None) -> None:
    """``imgzoo.load(name)`` runs on 2-D gray, RGB, RGBA and odd-sized images (one at a time and
    as a list, with synthetic values for the task's named inputs), and each result is an array
    of the size ``output_size()`` gives for its input."""
    settings = {**plugins.get_task_class(name).test_overrides, **(overrides or {})}
    pipeline = load(name, weights=False, device="cpu", **settings)
    size = pipeline.config.image_size
    images = {
        "2-D gray uint8": _to_uint8(synthetic_image(size, size + 2, 1, seed=3)[..., 0]),
        "RGB uint8": _to_uint8(synthetic_image(size, size, seed=4)),
        "RGBA uint8": np.dstack(
            [_to_uint8(synthetic_image(size + 1, size, seed=5)), np.full((size + 1, size), 200, np.uint8)]
        ),
        "odd-sized RGB float": synthetic_image(2 * size + 1, size + 3, seed=6),
        "small odd-sized RGB": synthetic_image(7, 5, seed=7),
    }
    named = [
        synthetic_inputs(pipeline.task, *image.shape[:2], seed=i) for i, image in enumerate(images.values())
    ]
    # Synthetic pictures may not look like what the task expects; "garbage in" warnings are fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = [pipeline(image, **inputs) for image, inputs in zip(images.values(), named, strict=True)]
        as_lists: dict[str, Any] = {key: [inputs[key] for inputs in named] for key in named[0]}
        batched = pipeline(list(images.values()), **as_lists)
    for (kind, image), result, in_list in zip(images.items(), results, batched, strict=True):
        expected = tuple(pipeline.task.output_size(*image.shape[:2]))
        for output in (result, in_list):
            _require(
                isinstance(output, np.ndarray) and output.shape[:2] == expected,
                name,
                f"run() on a {kind} image of shape {image.shape} returned "
                f"{getattr(output, 'shape', type(output).__name__)}: output_size() says {expected}",
            )


def check_training_step(name: str, overrides: Overrides = None, *, steps: int = 1) -> None:
    """``make_pair`` gives CxHxW tensors, ``training_step`` steps at least one optimizer (each at
    most once) and returns finite losses, and after ``steps`` steps on a tiny batch the total
    of those losses on that batch is lower. The step's randomness (dropout) is seeded alike
    before each measurement, so only the updates differ."""
    task, models = _fresh_task(name, overrides)
    for model in models.values():
        model.train()
    optimizers = dict(task.configure_optimizers(models))
    _require(optimizers, name, "configure_optimizers() returned no optimizers")
    batch = _tiny_batch(task)
    ctx = ImmediateStepContext(optimizers)
    totals = []
    with torch.random.fork_rng(devices=[]):
        for step in range(steps + 1):
            torch.manual_seed(0)
            ctx.step, ctx.calls = step, []
            losses = task.training_step(models, batch, ctx)
            _require(
                ctx.calls, name, "training_step() stepped no optimizer: it must call ctx.optimize(name, loss)"
            )
            _require(
                len(ctx.calls) == len(set(ctx.calls)),
                name,
                f"training_step() stepped an optimizer twice in one step: {ctx.calls}",
            )
            _require(
                isinstance(losses, Mapping) and losses,
                name,
                "training_step() must return a dict of named losses",
            )
            values = {key: float(torch.as_tensor(value).detach().float()) for key, value in losses.items()}
            _require(
                all(math.isfinite(value) for value in values.values()),
                name,
                f"non-finite loss(es) {values}",
            )
            totals.append(sum(values.values()))
    _require(
        totals[-1] < totals[0],
        name,
        f"the losses on one tiny batch did not go down after {steps} step(s): total {totals[0]:.6g} -> "
        f"{totals[-1]:.6g}. Is the learning rate far too high, or the loss detached from the model?",
    )


def check_trainer(name: str, overrides: Overrides = None) -> None:
    """Two optimizer steps through :func:`imgzoo.training.train` on six synthetic images, with a
    validation split; the exported weights file then loads with ``imgzoo.load`` and runs, and
    two evaluations of it (torch's and numpy's global generators in other states each time)
    give identical figures: a task that corrupts its pictures draws from ``sample.rng``."""
    from imgzoo.training import evaluate, train

    config = task_config(name, overrides)
    settings = {**plugins.get_task_class(name).test_overrides, **(overrides or {})}
    size = config.image_size
    with tempfile.TemporaryDirectory(prefix="imgzoo-contract-") as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = train(
            name,
            _SyntheticImages(6, size + size // 4),
            Path(folder) / "run",
            steps=2,
            batch_size=2,
            val_fraction=0.34,
            num_workers=0,
            device="cpu",
            precision="fp32",
            progress=False,
            grid_rows=2,
            **settings,
        )
        _require(
            result.weights is not None and result.weights.is_file(), name, "training exported no weights"
        )
        assert result.weights is not None  # for the type checker: _require raised otherwise
        _require(
            result.metrics and all(math.isfinite(value) for value in result.metrics.values()),
            name,
            f"metrics() gave no or non-finite values after training: {result.metrics}",
        )
        figures = []
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)
            np.random.seed(global_seed)
            figures.append(
                evaluate(name, _SyntheticImages(6, size + size // 4), weights=result.weights, device="cpu")
            )
        _require(
            figures[0] == figures[1],
            name,
            f"two evaluations of the same weights on the same pictures differ: {dict(figures[0])} and "
            f"{dict(figures[1])}; draw make_pair's random corruption from sample.rng",
        )
        pipeline = load(name, weights=result.weights, device="cpu")
        image = synthetic_image(size, size + 1, seed=8)
        output = pipeline(image, **synthetic_inputs(pipeline.task, size, size + 1, seed=8))
        _require(
            output.shape[:2] == tuple(pipeline.task.output_size(size, size + 1)),
            name,
            "trained weights did not run",
        )


def check_registered_weights(name: str, overrides: Overrides = None) -> None:
    """Every registered weights file that is local (shipped in a package, or on disk) matches
    its sha256, is weights for this task, loads and runs. Weights behind URLs (or on the Hub)
    are not fetched."""
    info = catalogue.task_info(name)
    local = {
        weights_name: entry
        for weights_name, entry in info.weights.items()
        if entry.file is not None and not is_remote_source(entry.file)
    }
    if not local:
        raise CheckNotApplicable(f"task {name!r} registers no local weights files to verify")
    for weights_name, entry in local.items():
        assert entry.file is not None  # for the type checker: filtered above
        path = resolve_weights_file(entry.file, sha256=entry.sha256, base_dir=entry.base_dir)
        pipeline = load(name, weights=weights_name, device="cpu")  # checks the sha256 and the task
        image = synthetic_image(24, 17, seed=9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = pipeline(image, **synthetic_inputs(pipeline.task, 24, 17, seed=9))
        _require(
            result.shape[:2] == tuple(pipeline.task.output_size(24, 17)),
            name,
            f"weights {weights_name!r} ({path}) did not run",
        )


def check_listing_is_light(name: str, overrides: Overrides = None) -> None:
    """Listing the task and reading its catalogue entry imports no torch, so ``imgzoo list`` stays
    fast: the plugin module (its hooks and declarations) and the config's module import no torch;
    the task's module, imported on first use, may. Checked in a fresh interpreter, so only for
    plugins installed as packages (entry points)."""
    plugin = next((info for info in plugins.plugin_infos() if name in info.tasks), None)
    _require(plugin is not None, name, "is not registered by any plugin")
    assert plugin is not None  # for the type checker: _require raised otherwise
    if plugin.distribution is None:
        raise CheckNotApplicable(
            f"task {name!r} comes from plugin {plugin.name!r}, registered in this process only "
            "(not an installed package), so a fresh interpreter would not see it"
        )
    probe = f"import sys, imgzoo\nimgzoo.task_info({name!r})\nprint('torch' in sys.modules)\n"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "IMGZOO_PLUGINS": plugin.name},
        check=False,
    )
    _require(
        completed.returncode == 0, name, f"listing it in a fresh interpreter failed:\n{completed.stderr}"
    )
    _require(
        completed.stdout.strip().endswith("False"),
        name,
        f"listing it imports torch: the modules of plugin {plugin.name!r} and of the task's config "
        "must not import torch or model code (the task's own module, named by task_class, may)",
    )


CHECKS: tuple[Check, ...] = (
    check_registered,
    check_config,
    check_forward,
    check_weights_round_trip,
    check_run,
    check_training_step,
    check_trainer,
    check_registered_weights,
    check_listing_is_light,
)
"""Every contract check, in the order :func:`check_task` runs them."""


def check_task(name: str, overrides: Overrides = None, *, skip: Sequence[str] = ()) -> dict[str, str]:
    """Run every contract check on task ``name`` (except those named in ``skip``); returns the
    checks that did not apply, each with the reason."""
    unknown = set(skip) - {check.__name__ for check in CHECKS}
    if unknown:
        raise ArgumentError(
            f"unknown check(s) {sorted(unknown)}; the checks are {[c.__name__ for c in CHECKS]}",
            argument="skip",
        )
    not_applicable = {}
    for check in CHECKS:
        if check.__name__ not in skip:
            try:
                check(name, overrides)
            except CheckNotApplicable as reason:
                not_applicable[check.__name__] = str(reason)
    return not_applicable


class TaskContract:
    """Subclass in a test module, set ``task`` (and maybe ``overrides``), and pytest runs each
    contract check as a test of its own. Override a ``test_*`` method to skip or adapt one."""

    task: ClassVar[str] = ""
    overrides: ClassVar[Mapping[str, Any]] = {}

    def test_registered(self) -> None:
        _as_pytest(check_registered, self.task, self.overrides)

    def test_config(self) -> None:
        _as_pytest(check_config, self.task, self.overrides)

    def test_forward(self) -> None:
        _as_pytest(check_forward, self.task, self.overrides)

    def test_weights_round_trip(self) -> None:
        _as_pytest(check_weights_round_trip, self.task, self.overrides)

    def test_run(self) -> None:
        _as_pytest(check_run, self.task, self.overrides)

    def test_training_step(self) -> None:
        _as_pytest(check_training_step, self.task, self.overrides)

    def test_trainer(self) -> None:
        _as_pytest(check_trainer, self.task, self.overrides)

    def test_registered_weights(self) -> None:
        _as_pytest(check_registered_weights, self.task, self.overrides)

    def test_listing_is_light(self) -> None:
        _as_pytest(check_listing_is_light, self.task, self.overrides)


# ── internals ─────────────────────────────────────────────────────────────────────────────────
def _as_pytest(check: Check, name: str, overrides: Overrides) -> None:
    """Run a check as a pytest test: one that does not apply is skipped, with its reason."""
    try:
        check(name, overrides)
    except CheckNotApplicable as reason:
        import pytest

        pytest.skip(str(reason))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(image * 255).astype(np.uint8)


def _fresh_task(name: str, overrides: Overrides) -> tuple[Task, dict[str, torch.nn.Module]]:
    """The task with its test config and freshly built models (seeded, on the CPU)."""
    task = plugins.get_task_class(name)(task_config(name, overrides))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        models = dict(task.build_models())
    _require(models, name, "build_models() returned no models")
    _require(
        task.inference_model_name in models,
        name,
        f"inference_model_name is {task.inference_model_name!r}, but build_models() made {sorted(models)}",
    )
    for role, model in models.items():
        _require(
            isinstance(model, torch.nn.Module),
            name,
            f"build_models()[{role!r}] is a {type(model).__name__}, not a torch.nn.Module",
        )
    return task, dict(models)


def _infer(
    task: Task, models: Mapping[str, torch.nn.Module], image: np.ndarray, *, seed: int = 0
) -> np.ndarray:
    """One image (with synthetic named inputs) through the pipeline's one entry, on the CPU; the
    result finished as every front-end gets it, held to the task's declarations."""
    height, width = image.shape[:2]
    named = {
        key: Image(value, None, f"synthetic {key}")
        for key, value in synthetic_inputs(task, height, width, seed=seed).items()
    }
    backend = TorchBackend(task, models, device=torch.device("cpu"), precision="fp32", weights=None)
    pipeline = Pipeline(task, models, backend, weights=None)
    # Synthetic pictures may not look like what the task expects: the "garbage in" warnings that
    # the result carries are left unread.
    try:
        result = pipeline.run([Request(Image(image, None, "synthetic image"), named)])[0].output
    except TaskBugError as error:
        raise TaskContractError(str(error), task=task.name) from error
    except ResultError as error:
        raise TaskContractError(
            f"postprocess() returned NaN or infinite values ({error})", task=task.name
        ) from error
    return result if result.ndim == 3 else result[..., None]


def _tiny_batch(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """Two synthetic samples through the task's own augmentations and ``make_pair``."""
    size = task.config.image_size
    transform = PairTransform(size, **task.augmentations())
    pairs = []
    for index in range(2):
        sample = Sample(image=synthetic_image(size + size // 4, size + size // 4, seed=10 + index))
        pair = task.make_pair(transform(sample, np.random.default_rng(index)))
        _require(
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(t, torch.Tensor) and t.ndim == 3 for t in pair),
            task.name,
            "make_pair() must return two CxHxW tensors (input, target)",
        )
        pairs.append(pair)
    return torch.stack([p[0] for p in pairs]).float(), torch.stack([p[1] for p in pairs]).float()


class _SyntheticImages:
    """A dataset of ``count`` synthetic ``size`` x ``size`` pictures (with a short repr: the
    trainer records it as the run's data)."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.count:
            raise IndexError(index)
        image = synthetic_image(self.size, self.size, seed=100 + index)
        return Sample(image=image, name=f"synthetic-{index}")

    def __repr__(self) -> str:
        return f"synthetic test images ({self.count} at {self.size} px)"
