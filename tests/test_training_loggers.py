"""Training loggers: TensorBoard and MLflow read back with their own readers, a resumed run
continuing the same runs, the one-line error of a missing extra, and a plugin's logger."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import imgzoo
from imgzoo import ConfigError, MissingExtraError, cli
from imgzoo.images import save_image
from imgzoo.training import train
from imgzoo.training.loggers import Logger, LoggerRun

pytestmark = pytest.mark.usefixtures("toy_tasks")

QUICK: dict[str, Any] = {
    "batch_size": 4,
    "device": "cpu",
    "num_workers": 0,
    "progress": False,
    "log_every": 1,
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(12):
        save_image(folder / f"{index:02d}.png", rng.random((20, 20, 3)).astype(np.float32))
    return str(folder)


def _scalars(out: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_both_loggers_write_what_their_own_readers_read_and_a_resume_continues_their_runs(
    images: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run-a"
    options = {**QUICK, "steps": 6, "eval_every": 3, "checkpoint_every": 2, "keep_last": 5}
    train("invert", images, out, loggers=["tensorboard", "mlflow"], **options)
    # As if killed after step 6 was logged but before its checkpoint was written: the resume
    # goes back to step 4 and logs steps 5 and 6 again, which neither logger may show twice.
    shutil.rmtree(out / "checkpoints" / "step-00000006")
    (out / "invert.safetensors").unlink()
    result = train("invert", images, out, resume=True, **options)
    assert result.steps == 6

    scalars = _scalars(out)
    assert [step for step, _ in scalars["loss/loss"]] == [1, 2, 3, 4, 5, 6]
    assert {"lr/model", "images_per_s", "data_wait", "val/psnr"} <= set(scalars)
    assert [step for step, _ in scalars["val/psnr"]] == [3, 6]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [event["losses"]["loss"] for event in logged if event["event"] == "train"]
    assert [value for _, value in scalars["loss/loss"]] == pytest.approx(losses)

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("invert")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the resume continued the run: no second one
    run = runs[0]
    assert run.info.run_name == "run-a" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "loss/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(losses)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/psnr")] == [3, 6]
    assert run.data.params["steps"] == "6" and run.data.params["batch_size"] == "4"
    assert "task.learning_rate" in run.data.params
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert "invert.safetensors" in artifacts and any(path.endswith(".toml") for path in artifacts)
    assert any(item.path.startswith("samples") for item in client.list_artifacts(run.info.run_id))


def test_the_logger_flag_is_repeatable_and_an_mlflow_server_is_used_when_set(
    images: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    server = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    # The server's experiments keep their artifacts where the server says: for a bare database
    # URI, MLflow's default, ./mlruns.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cli-run"
    arguments = ["train", "invert", "--data", images, "--out", str(out), "--logger", "tensorboard"]
    arguments += ["--logger", "mlflow", "--set", "steps=2", "--set", "device=cpu", "--set", "progress=false"]
    assert (
        cli.main([*arguments, "--set", "num_workers=0", "--set", "eval_every=2", "--set", "log_every=2"]) == 0
    )
    assert [step for step, _ in _scalars(out)["loss/loss"]] == [2]
    assert not (out / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()
    (run,) = MlflowClient(tracking_uri=server).search_runs(
        [MlflowClient(tracking_uri=server).get_experiment_by_name("invert").experiment_id]  # type: ignore[union-attr]
    )
    assert run.info.run_name == "cli-run" and "loss/loss" in run.data.metrics


@pytest.mark.parametrize("name", ["tensorboard", "mlflow"])
def test_a_missing_extra_is_one_line_naming_it(
    name: str,
    images: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    with pytest.raises(MissingExtraError, match=rf"pip install 'imgzoo\[{name}\]'"):
        train("invert", images, tmp_path / "a", loggers=[name], steps=1, **QUICK)
    assert not (tmp_path / "a").exists()  # failed before the output folder was made
    command = ["train", "invert", "--data", images, "--out", str(tmp_path / "b"), "--logger", name]
    assert cli.main(command) == 1
    # One error line, after the warning about the small folder's validation split.
    errors = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith("imgzoo: warning:")
    ]
    assert len(errors) == 1 and f"imgzoo[{name}]" in errors[0]


def test_an_unknown_logger_is_a_config_error(images: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown logger 'tensorbord'"):
        train("invert", images, tmp_path / "c", loggers=["tensorbord"], steps=1, **QUICK)


class MemoryLogger(Logger):
    """A plugin's logger: records every call, in this process, for the test to read."""

    name = "memory"
    opened: ClassVar[list[LoggerRun]] = []
    calls: ClassVar[list[tuple[str, int, Any]]] = []

    def __init__(self, run: LoggerRun) -> None:
        super().__init__(run)
        MemoryLogger.opened.append(run)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        MemoryLogger.calls.append(("scalars", step, dict(values)))

    def log_image(self, step: int, tag: str, path: Path) -> None:
        MemoryLogger.calls.append(("image", step, path.name))

    def log_artifact(self, path: Path) -> None:
        MemoryLogger.calls.append(("artifact", -1, path.name))


class MemoryLoggerPlugin:
    @imgzoo.hookimpl
    def register_loggers(self, register):  # type: ignore[no-untyped-def]
        register("memory", "test_training_loggers:MemoryLogger")
        register("tensorboard", "test_training_loggers:MemoryLogger")  # a built-in name: not used


@pytest.fixture
def memory_logger() -> Iterator[None]:
    name = imgzoo.register_plugin(MemoryLoggerPlugin(), name="memory-logger")
    MemoryLogger.opened.clear()
    MemoryLogger.calls.clear()
    yield
    imgzoo.unregister_plugin(name)


@pytest.mark.usefixtures("memory_logger")
def test_a_plugin_adds_a_logger_through_the_hook(images: str, tmp_path: Path) -> None:
    from imgzoo import plugins
    from imgzoo.training.loggers import logger_names

    assert plugins.logger_entries() == {"memory": "test_training_loggers:MemoryLogger"}
    assert logger_names() == ["tensorboard", "mlflow", "memory"]
    info = next(info for info in plugins.plugin_infos() if info.name == "memory-logger")
    assert info.loggers == ["memory", "tensorboard"] and "built-in" in info.clashes[0]
    train("invert", images, tmp_path / "run", loggers=["memory"], steps=4, eval_every=2, **QUICK)
    (run,) = MemoryLogger.opened
    assert run.task == "invert" and run.resumed_step is None and run.params["steps"] == 4
    steps = [step for kind, step, _ in MemoryLogger.calls if kind == "scalars" and "loss/loss" in _]
    assert steps == [1, 2, 3, 4]
    assert ("image", 2, "step-000002.png") in MemoryLogger.calls
    assert ("artifact", -1, "invert.safetensors") in MemoryLogger.calls


def test_importing_imgzoo_imports_none_of_the_extras() -> None:
    code = (
        "import sys, imgzoo, imgzoo.data, imgzoo.training.loggers, imgzoo.data.shards, imgzoo.data.hfds\n"
        "extras = ('tensorboard', 'mlflow', 'datasets', 'webdataset', 'fsspec')\n"
        "print([m for m in extras if m in sys.modules])"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
