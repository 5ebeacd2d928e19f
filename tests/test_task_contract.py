"""Every registered task keeps imgzoo's task contract (:mod:`imgzoo.testing`), one check per test.

The tasks are those of the installed plugins and of the example packages under ``examples/``
(registered from their source trees when they are not pip-installed), so the built-in tasks, the
third-party example and any task added later are all checked alike. The rest of the file checks
that the kit catches a task that breaks the contract.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import Field

import imgzoo
from imgzoo import testing
from imgzoo.testing import ImmediateStepContext, TaskContractError
from toy_tasks import DeclaringPlugin, InvertConfig, InvertTask, PixelNet, PixelNetConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


def _uninstalled_examples() -> dict[str, Path]:
    """Plugin packages under examples/*/src that no installed entry point provides: name -> src."""
    installed = {entry.value.split(":")[0].split(".")[0] for entry in metadata.entry_points(group="imgzoo")}
    return {
        package.parent.name: package.parent.parent
        for package in sorted(EXAMPLES.glob("*/src/*/__init__.py"))
        if package.parent.name not in installed
    }


@contextmanager
def _examples_registered() -> Iterator[None]:
    """Register the uninstalled example plugins from source for the duration of the block."""
    examples = _uninstalled_examples()
    added = [str(src) for src in examples.values() if str(src) not in sys.path]
    sys.path[:0] = added
    names = [imgzoo.register_plugin(importlib.import_module(package), name=package) for package in examples]
    try:
        yield
    finally:
        for name in names:
            imgzoo.unregister_plugin(name)
        for path in added:
            sys.path.remove(path)


def _every_task() -> list[str]:
    with _examples_registered():
        return imgzoo.list_tasks()


@pytest.fixture
def example_plugins() -> Iterator[None]:
    with _examples_registered():
        yield


@pytest.mark.parametrize("check", testing.CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", _every_task())
def test_task_keeps_the_contract(
    name: str, check: testing.Check, example_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the fresh interpreter of check_listing_is_light
    try:
        check(name)
    except testing.CheckNotApplicable as reason:
        pytest.skip(str(reason))


# ── the kit catches broken tasks ────────────────────────────────────────────────────────────
def _register(*task_classes: type[imgzoo.Task]) -> None:
    imgzoo.register_plugin(DeclaringPlugin(*task_classes), name="broken-tasks")


def test_the_toy_tasks_pass_the_whole_contract(toy_tasks: None) -> None:
    testing.check_task("invert")
    testing.check_task("toygan")


def test_check_task_rejects_unknown_check_names(toy_tasks: None) -> None:
    with pytest.raises(imgzoo.ArgumentError, match="check_forward"):
        testing.check_task("invert", skip=["check_froward"])


def test_an_unregistered_task_is_reported_with_the_installed_ones() -> None:
    with pytest.raises(TaskContractError, match=r"'nowhere': is not registered.*Installed tasks") as caught:
        testing.check_registered("nowhere")
    # One of imgzoo's errors, which pytest still reports as a failed assertion.
    assert isinstance(caught.value, imgzoo.ZooError) and isinstance(caught.value, AssertionError)
    assert caught.value.task == "nowhere" and testing.TaskContractError is imgzoo.TaskContractError


def test_an_undescribed_config_field_is_named() -> None:
    class Vague(InvertConfig):
        speed: float = 1.0

    _register(type("VagueTask", (InvertTask,), {"name": "vague", "Config": Vague}))
    with pytest.raises(TaskContractError, match=r"\['speed'\] have no description"):
        testing.check_config("vague")


def test_a_config_field_without_default_is_named() -> None:
    class Demanding(InvertConfig):
        level: int = Field(description="A field with no default.")

    _register(type("DemandingTask", (InvertTask,), {"name": "demanding", "Config": Demanding}))
    with pytest.raises(TaskContractError, match=r"give field\(s\) \['level'\] a default"):
        testing.check_config("demanding")


def test_a_result_of_the_wrong_size_is_caught() -> None:
    class Cropping(InvertTask):
        name = "cropping"

        def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
            return super().postprocess(output, image)[:8, :8]

    _register(Cropping)
    with pytest.raises(TaskContractError, match=r"task 'cropping' returned .* output_size\(\) says"):
        testing.check_forward("cropping")
    with pytest.raises(imgzoo.TaskBugError, match=r"task 'cropping' returned .*bug in the task's plugin"):
        testing.check_run("cropping")


def test_weights_that_do_not_reproduce_the_outputs_are_caught() -> None:
    class Forgetful(InvertTask):
        """Builds its model from a global, not from its config: loaded weights then differ."""

        name = "forgetful"
        built = 0

        def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
            return models["model"](inputs) * (2.0 if type(self).built > 1 else 1.0)

        def build_models(self) -> dict[str, imgzoo.Model]:
            type(self).built += 1
            return super().build_models()

    _register(Forgetful)
    with pytest.raises(TaskContractError, match="outputs differ"):
        testing.check_weights_round_trip("forgetful")


def test_a_training_step_that_never_optimizes_is_caught() -> None:
    class Lazy(InvertTask):
        name = "lazy"

        def training_step(
            self,
            models: Mapping[str, torch.nn.Module],
            batch: tuple[torch.Tensor, torch.Tensor],
            ctx: imgzoo.StepContext,
        ) -> dict[str, torch.Tensor]:
            return {"loss": self.loss(models, *batch).detach()}

    _register(Lazy)
    with pytest.raises(TaskContractError, match=r"must call ctx.optimize"):
        testing.check_training_step("lazy")


def test_a_loss_that_does_not_go_down_is_caught() -> None:
    class Detached(InvertTask):
        name = "detached"

        def loss(
            self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor, targets: torch.Tensor
        ) -> torch.Tensor:
            output = self.forward(models, inputs).detach()  # the bug: no gradient reaches the model
            anchor = sum(parameter.sum() for parameter in models["model"].parameters()) * 0
            return torch.nn.functional.l1_loss(output, targets) + anchor

    _register(Detached)
    with pytest.raises(TaskContractError, match="did not go down"):
        testing.check_training_step("detached")


class _Noisy(InvertTask):
    """Adds noise to its validation inputs, drawn from torch's global generator (the mistake)
    or from ``sample.rng`` (the seeded stream the trainer and the evaluator hand it)."""

    name = "noisy"
    seeded = False

    def make_pair(self, sample: imgzoo.Sample) -> tuple[torch.Tensor, torch.Tensor]:
        clean, target = super().make_pair(sample)
        if self.seeded:
            noise = torch.from_numpy(sample.rng.normal(0, 0.1, clean.shape).astype(np.float32))
        else:
            noise = torch.randn(clean.shape) * 0.1
        return clean + noise, target


def test_two_evaluations_of_a_corrupting_task_must_agree() -> None:
    _register(_Noisy)
    with pytest.raises(TaskContractError, match=r"two evaluations .* differ.*sample\.rng"):
        testing.check_trainer("noisy")
    seeded = type("SeededNoisy", (_Noisy,), {"seeded": True})
    _register(seeded)
    testing.check_trainer("noisy")


def test_immediate_step_context_steps_only_the_named_optimizer() -> None:
    first, second = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    optimizers = {
        "first": torch.optim.SGD(first.parameters(), lr=0.1),
        "second": torch.optim.SGD(second.parameters(), lr=0.1),
    }
    before = second.weight.detach().clone()
    ctx = ImmediateStepContext(optimizers)
    loss = (first(torch.ones(1, 2)) + second(torch.ones(1, 2))).sum()
    returned = ctx.optimize("first", loss)
    assert ctx.calls == ["first"] and not returned.requires_grad
    assert torch.equal(second.weight, before) and second.weight.grad is None
    with pytest.raises(TaskContractError, match="made \\['first', 'second'\\]"):
        ctx.optimize("third", loss)


def test_synthetic_images_are_reproducible_and_in_range() -> None:
    image = testing.synthetic_image(9, 13, seed=4)
    assert image.shape == (9, 13, 3) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1
    assert np.array_equal(image, testing.synthetic_image(9, 13, seed=4))
    assert testing.synthetic_image(9, 13, 1).shape == (9, 13, 1)


# ── the defaults of imgzoo.Task ──────────────────────────────────────────────────────────────
class _TwoModels(imgzoo.Task):
    inference_model_name = "generator"

    def build_models(self) -> dict[str, torch.nn.Module]:
        return {"generator": PixelNet(PixelNetConfig()), "critic": PixelNet(PixelNetConfig())}


def test_inference_model_name_names_the_model_forward_runs_and_adam_trains() -> None:
    assert imgzoo.Task.inference_model_name == "model"
    task = _TwoModels()
    models = task.build_models()
    models["generator"].mix.bias.data.fill_(5.0)  # type: ignore[union-attr]
    models["critic"].mix.bias.data.fill_(-5.0)  # type: ignore[union-attr]
    output = task.forward(models, torch.zeros(1, 3, 2, 2))
    assert torch.equal(output, models["generator"](torch.zeros(1, 3, 2, 2)))
    assert set(task.configure_optimizers(models)) == {"generator"}


class _Sevens(InvertTask):
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
        return torch.full_like(inputs, 7.0)


def test_predict_for_metrics_is_forward_unless_overridden() -> None:
    task = InvertTask()
    models = task.build_models()
    inputs = torch.rand(2, 3, 4, 4)
    assert torch.equal(task.predict_for_metrics(models, inputs), task.forward(models, inputs))
    sevens = _Sevens()
    assert torch.equal(sevens.predict_for_metrics(models, inputs), torch.full_like(inputs, 7.0))
    assert not torch.equal(sevens.forward(models, inputs), torch.full_like(inputs, 7.0))
