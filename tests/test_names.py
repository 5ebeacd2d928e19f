"""The public names, and the older spellings that user code and files already carry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo.images import save_image
from imgzoo.weights import save_weights, state_tensors
from toy_tasks import InvertConfig, InvertTask, PixelNet, PixelNetConfig, write_invert_weights, write_registry

pytestmark = pytest.mark.usefixtures("toy_tasks")


# ── the catalogue module ─────────────────────────────────────────────────────────────────────
def test_the_old_registry_module_is_the_catalogue(tmp_path: Path) -> None:
    import imgzoo.registry
    from imgzoo.registry import WeightsEntry, task_info

    import imgzoo.catalogue

    assert imgzoo.registry is imgzoo.catalogue
    assert WeightsEntry is imgzoo.catalogue.WeightsEntry and task_info is imgzoo.task_info
    # State set through the old name is the catalogue's own.
    file = tmp_path / "old.toml"
    write_registry(file, "invert", {"v1": ("w.safetensors", "ab" * 32)}, default="v1")
    imgzoo.registry.add_registry(file)
    assert imgzoo.catalogue.task_info("invert").default_weights == "v1"


# ── inference_model_name ─────────────────────────────────────────────────────────────────────
class _TwoModels(imgzoo.Task):
    def build_models(self) -> dict[str, torch.nn.Module]:
        return {"generator": PixelNet(PixelNetConfig()), "critic": PixelNet(PixelNetConfig())}


class _OldSpelling(_TwoModels):
    inference_model = "generator"  # type: ignore[assignment]


class _NewSpelling(_TwoModels):
    inference_model_name = "generator"


@pytest.mark.parametrize("task_class", [_OldSpelling, _NewSpelling])
def test_either_attribute_names_the_model_inference_runs(task_class: type[imgzoo.Task]) -> None:
    task = task_class()
    assert task.inference_model_name == "generator" and task.inference_model == "generator"
    models = task.build_models()
    models["generator"].mix.bias.data.fill_(5.0)  # type: ignore[union-attr]
    models["critic"].mix.bias.data.fill_(-5.0)  # type: ignore[union-attr]
    output = task.forward(models, torch.zeros(1, 3, 2, 2))
    assert torch.equal(output, models["generator"](torch.zeros(1, 3, 2, 2)))
    assert set(task.configure_optimizers(models)) == {"generator"}


def test_the_default_inference_model_name_is_model() -> None:
    assert imgzoo.Task.inference_model_name == "model" and InvertTask().inference_model == "model"


# ── predict_for_metrics ──────────────────────────────────────────────────────────────────────
class _OldPredict(InvertTask):
    def predict(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return torch.full_like(inputs, 7.0)


class _NewPredict(InvertTask):
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
        return torch.full_like(inputs, 7.0)


@pytest.mark.parametrize("task_class", [_OldPredict, _NewPredict])
def test_either_method_gives_the_outputs_metrics_read(task_class: type[imgzoo.Task]) -> None:
    task = task_class()
    models = task.build_models()
    inputs = torch.zeros(1, 3, 2, 2)
    for outputs in (task.predict_for_metrics(models, inputs), task.predict(models, inputs)):
        assert torch.equal(outputs, torch.full_like(inputs, 7.0))
    assert not torch.equal(task.forward(models, inputs), torch.full_like(inputs, 7.0))


class _OldPredictExtendingTheDefault(InvertTask):
    def predict(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return super().predict(models, inputs).clamp(0, 0.5)


def test_an_older_override_may_extend_the_default_through_super() -> None:
    task = _OldPredictExtendingTheDefault()
    models = task.build_models()
    inputs = torch.rand(1, 3, 2, 2)
    expected = task.forward(models, inputs).clamp(0, 0.5)
    assert torch.equal(task.predict_for_metrics(models, inputs), expected)  # no endless recursion
    assert torch.equal(task.predict(models, inputs), expected)


def test_predict_for_metrics_defaults_to_forward() -> None:
    task = InvertTask()
    models = task.build_models()
    inputs = torch.rand(2, 3, 4, 4)
    assert torch.equal(task.predict_for_metrics(models, inputs), task.forward(models, inputs))


# ── config_file= ─────────────────────────────────────────────────────────────────────────────
@pytest.fixture
def gain_file(tmp_path: Path) -> Path:
    file = tmp_path / "settings.toml"
    file.write_text("gain = 4.0\n")
    return file


@pytest.mark.parametrize("keyword", ["config_file", "config"])
def test_load_reads_the_config_file_by_either_keyword(keyword: str, gain_file: Path) -> None:
    assert imgzoo.load("invert", False, **{keyword: gain_file}).config.gain == 4.0


def test_load_and_export_refuse_two_config_files(gain_file: Path, tmp_path: Path) -> None:
    calls = [
        lambda: imgzoo.load("invert", False, config_file=gain_file, config=gain_file),
        lambda: imgzoo.export(
            "invert",
            False,
            format="torchscript",
            output=tmp_path / "m.pt",
            config_file=gain_file,
            config=gain_file,
        ),
    ]
    for call in calls:
        with pytest.raises(imgzoo.ArgumentError, match="config_file= alone") as caught:
            call()
        assert "invert" in str(caught.value) and caught.value.argument == "config"
    assert not (tmp_path / "m.pt").exists()


def test_train_reads_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        save_image(folder / f"{index}.png", rng.random((16, 16, 3)).astype(np.float32))
    settings = tmp_path / "settings.toml"
    settings.write_text("gain = 3.0\nbatch_size = 2\n")
    result = imgzoo.train(
        "invert",
        str(folder),
        out=tmp_path / "run",
        steps=1,
        device="cpu",
        progress=False,
        config_file=settings,
    )
    assert result.weights is not None
    trained = imgzoo.load("invert", result.weights)
    assert trained.config.gain == 3.0


# ── weights="default" ────────────────────────────────────────────────────────────────────────
def test_weights_default_is_what_none_loads(tmp_path: Path) -> None:
    weights = tmp_path / "exact.safetensors"
    write_registry(
        tmp_path / "r.toml",
        "invert",
        {"exact": (weights.name, write_invert_weights(weights))},
        default="exact",
    )
    imgzoo.add_registry(tmp_path / "r.toml")
    named, implicit = imgzoo.load("invert", "default"), imgzoo.load("invert")
    assert named.weights is not None and implicit.weights is not None
    assert named.weights.name == implicit.weights.name == "exact"
    assert imgzoo.load("invert", "none").weights is None


def test_weights_registered_as_default_are_those_weights(tmp_path: Path) -> None:
    write_registry(
        tmp_path / "r.toml",
        "invert",
        {
            "exact": ("exact.safetensors", write_invert_weights(tmp_path / "exact.safetensors")),
            "default": ("half.safetensors", write_invert_weights(tmp_path / "half.safetensors", gain=0.5)),
        },
        default="exact",
    )
    imgzoo.add_registry(tmp_path / "r.toml")
    loaded = imgzoo.load("invert", "default")
    assert loaded.weights is not None and loaded.weights.name == "default"


def test_weights_default_without_default_weights_warns_like_none() -> None:
    with pytest.warns(UserWarning, match="untrained"):
        assert imgzoo.load("invert", "default").weights is None


# ── color, not colour ────────────────────────────────────────────────────────────────────────
def test_colourfulness_is_colorfulness() -> None:
    from imgzoo.metrics import colorfulness, colourfulness

    assert colourfulness is colorfulness
    assert "colorfulness" in imgzoo.metrics.__all__


def test_registry_metrics_with_colour_keys_read_as_color(tmp_path: Path) -> None:
    file = tmp_path / "r.toml"
    write_registry(file, "invert", {"v1": ("w.safetensors", "ab" * 32)})
    text = (
        file.read_text() + "metrics = { colourfulness_ratio = 0.8, psnr_mean_colour = 19.1, psnr = 21.0 }\n"
    )
    file.write_text(text)
    imgzoo.add_registry(file)
    metrics = imgzoo.task_info("invert").weights["v1"].metrics
    assert metrics == {"colorfulness_ratio": 0.8, "psnr_mean_color": 19.1, "psnr": 21.0}


def test_the_new_spelling_wins_over_its_old_twin() -> None:
    from imgzoo.catalogue import canonical_metric_names

    both = canonical_metric_names({"colorfulness_ratio": 1.0, "colourfulness_ratio": 0.5})
    assert both == {"colorfulness_ratio": 1.0}
    nested = canonical_metric_names({"psnr": 20.0, "l1_only_baseline": {"colourfulness_ratio": 0.5}})
    assert nested == {"psnr": 20.0, "l1_only_baseline": {"colorfulness_ratio": 0.5}}


def test_an_evaluation_answers_to_the_old_spelling_too() -> None:
    from imgzoo.training.api import Evaluation

    evaluation = Evaluation({"colorfulness_ratio": 0.8}, task="t", weights={}, data={})
    assert evaluation["colourfulness_ratio"] == 0.8 and "colourfulness_ratio" not in evaluation
    with pytest.raises(KeyError):
        evaluation["sharpness_ratio"]


def test_weights_metadata_metrics_with_colour_keys_read_as_color(tmp_path: Path) -> None:
    task = InvertTask(InvertConfig())
    metadata = {
        "task": "invert",
        "config": task.config.model_dump(mode="json"),
        "metrics": {"colourfulness_ratio": 0.7, "ssim": 0.9},
    }
    path = tmp_path / "w.safetensors"
    save_weights(path, state_tensors(task.build_models()["model"], prefix="model"), metadata=metadata)
    loaded = imgzoo.load("invert", path)
    assert loaded.weights is not None
    assert loaded.weights.metadata["metrics"] == {"colorfulness_ratio": 0.7, "ssim": 0.9}


def test_shipped_metric_keys_use_one_spelling() -> None:
    from imgzoo.catalogue import builtin_registry_file, read_registry_file

    shipped = read_registry_file(builtin_registry_file())
    keys = [
        key
        for entry in shipped.values()
        for weights in entry["weights"].values()
        for key in weights.get("metrics", {})
    ]
    assert "colorfulness_ratio" in keys and not any("colour" in key for key in keys)
