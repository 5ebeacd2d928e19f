"""Export to ONNX and TorchScript, and the ONNX Runtime backend: the same results as PyTorch,
the file's record of its origin, the cache of exported graphs, and clear refusals."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import exporting, images, plugins
from imgzoo.cli import main
from imgzoo.exporting import TOLERANCE, export, exported_metadata
from toy_tasks import InvertTask, TiledToyTasksPlugin, declare, write_invert_weights

EXAMPLE_TASKS = Path(__file__).resolve().parent.parent / "examples"


def small(task: str) -> dict[str, Any]:
    return dict(plugins.get_task_class(task).test_overrides)


@pytest.fixture
def example_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example packages' tasks ``denoise``, ``superres`` and ``superres-x4``."""
    for package in ("imgzoo-denoise", "imgzoo-superres"):
        monkeypatch.syspath_prepend(str(EXAMPLE_TASKS / package / "src"))
    import imgzoo_denoise
    import imgzoo_superres

    names = [imgzoo.register_plugin(module) for module in (imgzoo_denoise, imgzoo_superres)]
    yield
    for name in names:
        imgzoo.unregister_plugin(name)


@pytest.fixture
def tiled_tasks() -> Iterator[None]:
    name = imgzoo.register_plugin(TiledToyTasksPlugin(), name="tiled-toy-tasks")
    yield
    imgzoo.unregister_plugin(name)


# ── export ───────────────────────────────────────────────────────────────────────────────────

EXPORTABLE = [
    ("colorize", {}),
    ("edges2photo", {"upsample": "resize"}),
    ("edges2photo", {"upsample": "transposed"}),
    ("denoise", {}),
    ("superres", {}),
    ("superres-x4", {}),
]


@pytest.mark.usefixtures("example_tasks")
@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize(("task", "options"), EXPORTABLE, ids=lambda value: str(value or ""))
def test_every_task_exports_and_matches_pytorch_at_several_sizes(
    task: str, options: dict[str, Any], format: str, tmp_path: Path
) -> None:
    report = export(task, False, format=format, output=tmp_path / f"model.{format}", **small(task), **options)
    assert report.file.is_file() and report.format == format and report.tolerance == TOLERANCE
    shapes = {check.shape for check in report.checks}
    assert any(shape[0] == 2 for shape in shapes), "a batch of two"
    assert len({shape[2:] for shape in shapes}) >= 2, "several sizes"
    assert {"minifig-0.png", "astronaut.jpg"} <= {check.input for check in report.checks}, "real pictures"
    for check in report.checks:
        assert check.max_abs_difference <= TOLERANCE * check.scale
    assert exported_metadata(report.file)["imgzoo.task"] == task


def test_the_file_records_task_config_weights_and_version(tmp_path: Path) -> None:
    report = export("colorize", output=tmp_path / "colorize.onnx", image_size=32)
    entry = imgzoo.task_info("colorize").weights["minifigs-preview"]
    stored = exported_metadata(report.file)
    assert stored["imgzoo.task"] == "colorize"
    assert stored["imgzoo.weights_sha256"] == entry.sha256
    assert stored["imgzoo.version"] == imgzoo.__version__
    config = imgzoo.load("colorize", image_size=32).config
    assert json.loads(stored["imgzoo.config"]) == config.model_dump(mode="json")


@pytest.mark.usefixtures("toy_tasks")
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_records_its_origin_and_runs_alone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = export("invert", False, format="torchscript", output=tmp_path / "invert.pt", gain=2.0)
    assert exported_metadata(report.file)["imgzoo.config"].find('"gain": 2.0') >= 0
    loaded = torch.jit.load(str(report.file))
    torch.manual_seed(0)
    pipeline = imgzoo.load("invert", False, device="cpu", precision="fp32", gain=2.0)
    batch = torch.rand(3, 3, 5, 7)
    assert torch.allclose(loaded(batch), pipeline.backend.forward(batch), atol=1e-6)


@pytest.mark.usefixtures("toy_tasks")
def test_an_existing_file_is_replaced_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "invert.onnx"
    target.write_bytes(b"keep")
    with pytest.raises(imgzoo.OutputExistsError, match="exists: pass --overwrite"):
        export("invert", False, output=target)
    assert target.read_bytes() == b"keep"
    export("invert", False, output=target, overwrite=True)
    assert exported_metadata(target)["imgzoo.task"] == "invert"


@pytest.mark.usefixtures("toy_tasks")
def test_an_export_never_replaces_its_own_weights(tmp_path: Path) -> None:
    # Before, `imgzoo export --overwrite` replaced the weights file it read.
    weights = tmp_path / "invert.safetensors"
    write_invert_weights(weights)
    before = weights.read_bytes()
    (tmp_path / "alias.onnx").symlink_to(weights)
    for output in (weights, tmp_path / "alias.onnx"):
        assert main(["export", "invert", "--weights", str(weights), "-o", str(output), "--overwrite"]) == 1
    assert weights.read_bytes() == before
    with pytest.raises(imgzoo.OutputError, match="would replace its own weights"):
        export("invert", weights, output=weights, overwrite=True)


class ValueAsConstantTask(InvertTask):
    """Its forward turns a tensor into a Python number, which a trace records as a constant."""

    name = "value-as-constant"

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return models["model"](inputs) * float(inputs.mean())


class HistogramTask(InvertTask):
    """Its forward uses torch.histc, which has no ONNX form."""

    name = "histogram"

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return models["model"](inputs) + 0 * torch.histc(inputs, bins=4).sum()


class UntraceablePlugin:
    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(declare(ValueAsConstantTask))
        register(declare(HistogramTask))


@pytest.fixture
def untraceable_tasks() -> Iterator[None]:
    name = imgzoo.register_plugin(UntraceablePlugin(), name="untraceable")
    yield
    imgzoo.unregister_plugin(name)


@pytest.mark.usefixtures("untraceable_tasks")
def test_a_value_traced_as_a_constant_is_refused_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(imgzoo.ExportError) as caught:
        export("value-as-constant", False, output=tmp_path / "model.onnx")
    message = str(caught.value)
    assert "\n" not in message
    assert "differ from PyTorch's" in message
    assert f"{Path(__file__).name}:" in message and "Python" in message
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.usefixtures("untraceable_tasks")
def test_an_operation_without_an_onnx_form_is_named_in_one_line(tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(imgzoo.ExportError, match=r"uses aten::histc, which has no ONNX form at opset"):
        export("histogram", False, output=tmp_path / "model.onnx")
    assert main(["export", "histogram", "--weights", "none", "-o", str(tmp_path / "model.onnx")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("imgzoo: error: task 'histogram' cannot be exported") and "\n" not in error


def test_a_random_forward_pass_is_refused(tmp_path: Path) -> None:
    with pytest.raises(imgzoo.ExportError, match="different outputs for the same input"):
        export(
            "edges2photo",
            False,
            output=tmp_path / "g.onnx",
            dropout_at_inference=True,
            **small("edges2photo"),
        )


@pytest.mark.usefixtures("toy_tasks")
def test_the_export_command_prints_the_check(tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "invert.pt"
    assert main(["export", "invert", "--weights", "none", "--format", "torchscript", "-o", str(target)]) == 0
    printed = capsys.readouterr().out
    assert f"exported invert to {target} (torchscript" in printed
    assert "random 64x48 (batch of 2)" in printed and "max abs difference" in printed
    assert exported_metadata(target)["imgzoo.weights"] == "untrained"


# ── the ONNX Runtime backend ─────────────────────────────────────────────────────────────────


def _both_backends(task: str, **options: Any) -> tuple[imgzoo.Pipeline, imgzoo.Pipeline]:
    """The same (fresh, seeded) weights in PyTorch at fp32 and in ONNX Runtime."""
    pipelines = []
    for backend in ("torch", "onnxruntime"):
        torch.manual_seed(0)
        pipelines.append(
            imgzoo.load(
                task, False, device="cpu", precision="fp32", backend=backend, **small(task), **options
            )
        )
    return pipelines[0], pipelines[1]


def _picture(rng: np.random.Generator, height: int = 40, width: int = 56) -> np.ndarray:
    return rng.random((height, width, 3), dtype=np.float32)


BACKEND_TASKS = [
    *EXPORTABLE,
    ("toy-depth", {}),
    ("toy-upscale", {}),
    ("invert", {"gain": 0.5}),
]


@pytest.mark.usefixtures("example_tasks", "contract_tasks", "toy_tasks")
@pytest.mark.filterwarnings("ignore:edges2photo. the input does not look like an edge map")
@pytest.mark.parametrize(("task", "options"), BACKEND_TASKS, ids=lambda value: str(value or ""))
def test_onnxruntime_gives_pytorchs_results(
    task: str, options: dict[str, Any], rng: np.random.Generator
) -> None:
    reference, exported = _both_backends(task, **options)
    pictures = [_picture(rng), _picture(rng, 33, 21)]
    for expected, result in zip(reference(pictures), exported(pictures), strict=True):
        assert result.shape == expected.shape and result.dtype == expected.dtype
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(result - expected).max() <= TOLERANCE * scale


@pytest.mark.usefixtures("contract_tasks")
def test_named_inputs_reach_the_exported_graph(rng: np.random.Generator) -> None:
    reference, exported = _both_backends("toy-inpaint")
    picture = _picture(rng)
    mask = (rng.random((40, 56, 1)) < 0.3).astype(np.float32)
    expected, result = reference(picture, mask=mask), exported(picture, mask=mask)
    assert np.abs(result - expected).max() <= TOLERANCE
    assert not np.allclose(result, exported(picture, mask=1 - mask)), "the mask matters"


@pytest.mark.usefixtures("tiled_tasks")
def test_tiled_runs_use_the_exported_graph_too(rng: np.random.Generator, monkeypatch: Any) -> None:
    reference, exported = _both_backends("smooth")
    assert exported.tiling is not None
    shapes = []
    model = exported.backend.forward
    monkeypatch.setattr(exported.backend, "forward", lambda batch: shapes.append(batch.shape) or model(batch))
    picture = _picture(rng, 70, 90)
    assert np.abs(exported(picture) - reference(picture)).max() <= TOLERANCE
    assert len(shapes) >= 1 and max(shape[-1] for shape in shapes) < 90, "ran in tiles"


@pytest.mark.usefixtures("toy_tasks")
def test_the_repr_says_onnxruntime_runs_fp32_on_the_cpu() -> None:
    pipeline = imgzoo.load("invert", False, backend="onnxruntime")
    assert repr(pipeline).endswith(
        "backend='onnxruntime', device=cpu, precision='fp32' (ONNX Runtime runs fp32 on the CPU))"
    )
    assert "backend='torch'" in repr(imgzoo.load("invert", False))
    with pytest.raises(imgzoo.BackendError, match="runs fp32 only, not bf16"):
        imgzoo.load("invert", False, backend="onnxruntime", precision="bf16")
    with pytest.raises(imgzoo.BackendError, match="unknown backend 'tensorrt'"):
        imgzoo.load("invert", False, backend="tensorrt")


@pytest.fixture
def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the ONNX Runtime backend exports, in order."""
    exported: list[Path] = []
    real = exporting.export_pipeline

    def counting(pipeline: Any, output: Any, **options: Any) -> Any:
        exported.append(Path(output))
        return real(pipeline, output, **options)

    monkeypatch.setattr(exporting, "export_pipeline", counting)
    return exported


@pytest.mark.usefixtures("toy_tasks")
def test_a_valid_cached_graph_is_never_exported_again(count_exports: list[Path], tmp_path: Path) -> None:
    from toy_tasks import write_invert_weights

    weights = tmp_path / "invert.safetensors"
    write_invert_weights(weights)
    for _ in range(3):
        pipeline = imgzoo.load("invert", weights, backend="onnxruntime")
    assert len(count_exports) == 1
    assert np.allclose(pipeline(np.full((4, 4, 3), 0.25, np.float32)), 0.75, atol=1e-6)
    imgzoo.load("invert", weights, backend="onnxruntime", gain=0.5)  # another config: another graph
    assert len(count_exports) == 2 and count_exports[0] != count_exports[1]
    imgzoo.load("invert", weights, backend="onnxruntime")
    assert len(count_exports) == 2


def test_an_edited_plugin_package_is_exported_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgzoo.backends.onnx_runtime import _source_digest

    package = tmp_path / "edited_plugin"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "task.py").write_text("class EditedTask:\n    pass\n")
    (package / "models" / "net.py").write_text("WIDTH = 8\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from edited_plugin.task import EditedTask  # type: ignore[import-not-found]

    before = _source_digest(EditedTask)
    (package / "models" / "net.py").write_text("WIDTH = 16\n")  # the model, not the task's module
    assert _source_digest(EditedTask) != before  # so the cache key, and the graph, change too


@pytest.mark.usefixtures("toy_tasks")
@pytest.mark.parametrize("damage", ["missing", "truncated", "replaced", "record missing"])
def test_a_missing_corrupt_or_stale_graph_is_exported_again(
    damage: str, count_exports: list[Path], tmp_path: Path
) -> None:
    from toy_tasks import write_invert_weights

    weights = tmp_path / "invert.safetensors"
    write_invert_weights(weights)
    imgzoo.load("invert", weights, backend="onnxruntime")
    graph = count_exports[0]
    other = imgzoo.load("invert", weights, backend="onnxruntime", gain=3.0)
    if damage == "missing":
        graph.unlink()
    elif damage == "truncated":
        graph.write_bytes(graph.read_bytes()[:100])
    elif damage == "replaced":  # a valid graph, but another one: it would give gain 3's results
        graph.write_bytes(other.backend.model.path.read_bytes())  # type: ignore[attr-defined]
    else:
        graph.with_name(graph.name + ".json").unlink()
    pipeline = imgzoo.load("invert", weights, backend="onnxruntime")
    assert len(count_exports) == 3 and count_exports[2] == graph
    assert np.allclose(pipeline(np.full((4, 4, 3), 0.25, np.float32)), 0.75, atol=1e-6)


@pytest.mark.usefixtures("toy_tasks")
def test_run_and_the_command_line_take_the_backend(tmp_path: Path, capsys: Any) -> None:
    from toy_tasks import write_invert_weights

    weights = tmp_path / "invert.safetensors"
    write_invert_weights(weights)
    picture = np.full((6, 5, 3), 0.125, np.float32)
    assert np.allclose(
        imgzoo.run("invert", picture, weights=weights, backend="onnxruntime"), 0.875, atol=1e-6
    )
    source = tmp_path / "in.png"
    images.save_image(source, picture)
    code = main(["run", "invert", str(source), "--weights", str(weights), "--backend", "onnxruntime",
                 "-o", str(tmp_path / "out.png")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert images.load_image(tmp_path / "out.png").pixels.mean() == pytest.approx(0.875, abs=1 / 255)


@pytest.mark.usefixtures("toy_tasks")
def test_without_onnxruntime_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(imgzoo.MissingExtraError, match=r"pip install 'imgzoo\[onnx\]'") as caught:
        imgzoo.load("invert", False, backend="onnxruntime")
    assert "\n" not in str(caught.value)
    with pytest.raises(imgzoo.MissingExtraError, match="to check an ONNX export"):
        export("invert", False, output=tmp_path / "invert.onnx")
    source = tmp_path / "in.png"
    images.save_image(source, np.zeros((4, 4, 3), np.float32))
    assert (
        main(["run", "invert", str(source), "--backend", "onnxruntime", "-o", str(tmp_path / "o.png")]) == 1
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "imgzoo: error: onnxruntime is not installed (for backend='onnxruntime'): pip install 'imgzoo[onnx]'"
    )
    # TorchScript needs no onnxruntime.
    export("invert", False, format="torchscript", output=tmp_path / "invert.pt")


@pytest.mark.usefixtures("toy_tasks")
def test_without_onnx_an_onnx_export_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    imgzoo.load("invert", False, backend="onnxruntime")  # exported and cached while onnx is there
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(
        imgzoo.MissingExtraError, match=r"onnx is not installed \(to export to ONNX\).*imgzoo\[onnx\]"
    ):
        export("invert", False, output=tmp_path / "invert.onnx")
    torch.manual_seed(0)
    # A new graph must be exported.
    with pytest.raises(imgzoo.MissingExtraError, match="onnx is not installed"):
        imgzoo.load("invert", False, backend="onnxruntime", gain=2.0)
