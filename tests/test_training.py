"""The generic trainer, end to end on the test-only tasks: ``invert`` (one model) and ``toygan``
(two models, two optimizers). Images are 20x20 PNGs cropped to 16x16; runs take a few steps."""

from __future__ import annotations

import errno
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import (
    CheckpointError,
    ConfigError,
    DataError,
    OutputError,
    OutputExistsError,
    ResultError,
    cli,
)
from imgzoo.catalogue import WeightsEntry
from imgzoo.data import Sample
from imgzoo.images import save_image
from imgzoo.training import Callback, Trainer, TrainingInterrupted, TrainResult, evaluate, train
from imgzoo.training import api as training_api
from imgzoo.training import environment as training_environment
from imgzoo.training.batches import BatchPlan
from imgzoo.training.config import build_train_config
from imgzoo.training.report import grid_shape
from imgzoo.training.schedule import lr_factor
from imgzoo.weights import load_weights, read_metadata
from toy_tasks import write_invert_weights, write_registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomli is imgzoo's own dependency on Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
# Small and quick: eval, checkpoints and logs rarely unless a test is about them.
QUICK: dict[str, Any] = {
    "batch_size": 4,
    "device": "cpu",
    "num_workers": 0,
    "progress": False,
    "log_every": 1,
}

pytestmark = pytest.mark.usefixtures("toy_tasks")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    """20 random 20x20 RGB PNGs: 18 for training (4 batches of 4 per epoch), 2 for validation."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(20):
        save_image(folder / f"{index:02d}.png", rng.random((20, 20, 3)).astype(np.float32))
    return str(folder)


@pytest.fixture(scope="module")
def invert_run(images: str, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One complete invert run that several tests inspect."""
    from toy_tasks import ToyTasksPlugin

    # Registered for the run only: the tests that inspect it have the toy_tasks fixture's tasks.
    name = imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks-module")
    out = tmp_path_factory.mktemp("runs") / "invert-v1"
    try:
        return train(
            "invert",
            images,
            out=out,
            learning_rate=0.1,
            steps=60,
            eval_every=20,
            checkpoint_every=20,
            grid_rows=2,
            **{**QUICK, "batch_size": 8, "log_every": 5},
        )
    finally:
        imgzoo.unregister_plugin(name)


class StopAt(Callback):
    """Interrupts the run after a given step, as Ctrl-C would."""

    def __init__(self, step: int, *, signal_number: int | None = None) -> None:
        self.step = step
        self.signal_number = signal_number

    def on_step_end(self, trainer: Trainer, step: int, losses: Mapping[str, torch.Tensor]) -> None:
        if step == self.step:
            if self.signal_number is not None:
                os.kill(os.getpid(), self.signal_number)
            else:
                raise KeyboardInterrupt


class Recorder(Callback):
    """Records which hooks ran at which step, and the weights training started from."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | str]] = []
        self.initial: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        self.events.append(("start", trainer.step))
        for name, model in trainer.models.items():
            self.initial.update({f"{name}.{key}": value.clone() for key, value in model.state_dict().items()})

    def on_evaluate(self, trainer: Trainer, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("evaluate", step))

    def on_checkpoint(self, trainer: Trainer, step: int, path: Path) -> None:
        self.events.append(("checkpoint", path.name))

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.events.append(("end", result.steps))


BROKEN_PAIR = "pairs/B/x.png is 24x20 but pairs/A/x.png is 20x20: a pair must be the same size"


class Pictures:
    """A dataset object of ``count`` random 16x16 pictures; reading picture ``broken`` fails as a
    paired source's size check does."""

    def __init__(self, count: int, *, broken: int | None = None) -> None:
        self.count, self.broken = count, broken

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if index == self.broken:
            raise DataError(BROKEN_PAIR)
        return Sample(np.random.default_rng(index).random((16, 16, 3), dtype=np.float32), name=str(index))


def logged_results(out: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without its timings."""
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in event.items() if k not in ("images_per_s", "data_wait")} for event in events]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load_weights(path)[0]


def train_events(out: Path) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [event for event in map(json.loads, lines) if event["event"] == "train"]


# ── the schedule and the batch plan: pure functions ─────────────────────────────────────────
def test_linear_schedule_is_constant_then_decays_to_zero() -> None:
    factors = [lr_factor(step, 10, schedule="linear", decay_start=0.6) for step in range(10)]
    assert factors == pytest.approx([1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert lr_factor(10, 10, schedule="linear") == 0.0
    assert all(lr_factor(step, 10, schedule="constant") == 1.0 for step in range(12))
    assert lr_factor(0, 4, schedule="linear", decay_start=0.0) == 1.0
    with pytest.raises(ValueError, match="cosine"):
        lr_factor(0, 10, schedule="cosine")


def test_batch_plan_shards_each_global_batch_across_processes_and_micro_batches() -> None:
    single = BatchPlan(dataset_size=10, batch_size=4, seed=3)
    split = [BatchPlan(10, 4, grad_accum=2, world_size=2, seed=3).micro_batches(5, rank) for rank in (0, 1)]
    (whole,) = single.micro_batches(5)
    assert whole[0][0] == 2  # step 5 is batch 1 of epoch 2 (two batches per epoch)
    assert [split[0][0], split[1][0], split[0][1], split[1][1]] == [
        whole[0:1],
        whole[1:2],
        whole[2:3],
        whole[3:4],
    ]
    assert single.micro_batches(5) == single.micro_batches(5)
    assert single.epoch_order(0).tolist() != single.epoch_order(1).tolist()


# ── training works ──────────────────────────────────────────────────────────────────────────
def test_invert_learns(invert_run: TrainResult) -> None:
    losses = [event["losses"]["loss"] for event in train_events(invert_run.out_dir)]
    assert losses[-1] < losses[0] / 3
    assert invert_run.steps == 60 and invert_run.epochs == pytest.approx(60 / 2)
    assert invert_run.metrics["l1"] < 0.06
    assert invert_run.best is not None and invert_run.best["metric"] == "psnr"
    assert 0 <= invert_run.data_wait_fraction < 1 and invert_run.images_per_s > 0


def test_run_writes_logs_pictures_and_only_safe_files(invert_run: TrainResult) -> None:
    out = invert_run.out_dir
    files = [path for path in out.rglob("*") if path.is_file()]
    # .lock: the empty-but-for-a-pid file that keeps a second run out of the folder.
    assert {path.suffix for path in files} <= {".safetensors", ".json", ".jsonl", ".png", ".toml", ".lock"}
    assert sorted(path.name for path in (out / "samples").iterdir()) == [
        "step-000020.png",
        "step-000040.png",
        "step-000060.png",
    ]
    grid = cv2.imread(str(out / "samples" / "step-000060.png"))
    assert grid is not None and grid.shape[:2] == grid_shape(2, (16, 16), columns=3)
    assert cv2.imread(str(out / "loss.png")) is not None

    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [event["step"] for event in events if event["event"] == "eval"] == [20, 40, 60]
    assert [event["step"] for event in events if event["event"] == "train"] == list(range(5, 61, 5))
    assert all(0 <= event["data_wait"] <= 1 and event["images_per_s"] > 0 for event in train_events(out))


def test_final_weights_describe_themselves_and_load(invert_run: TrainResult) -> None:
    assert invert_run.weights == invert_run.out_dir / "invert.safetensors"
    tensors, metadata = load_weights(invert_run.weights, sha256=invert_run.sha256)
    assert set(tensors) == {"model.mix.weight", "model.mix.bias"}
    assert {"task", "config", "recipe", "metrics", "dataset", "code_version"} <= set(metadata)
    assert metadata["task"] == "invert" and metadata["config"]["learning_rate"] == 0.1
    assert metadata["recipe"]["optimizers"] == {"model": {"class": "Adam", "lr": 0.1}}
    assert metadata["recipe"]["steps"] == 60 and metadata["metrics"] == invert_run.metrics
    assert metadata["dataset"]["train_size"] == 18 and metadata["dataset"]["val_size"] == 2
    assert metadata["code_version"]["imgzoo"] == imgzoo.__version__

    pipeline = imgzoo.load("invert", weights=str(invert_run.weights), device="cpu")
    image = np.random.default_rng(1).random((12, 12, 3)).astype(np.float32)
    assert np.abs(pipeline(image) - (1 - image)).mean() < 0.06
    assert "started_from" not in metadata["recipe"]  # a fresh init


def test_weights_trained_from_other_weights_name_them(
    invert_run: TrainResult, images: str, tmp_path: Path
) -> None:
    assert invert_run.weights is not None
    stage_two = train(
        "invert", images, out=tmp_path / "stage-two", weights=invert_run.weights, steps=2, **QUICK
    )
    assert stage_two.weights is not None
    recipe = read_metadata(stage_two.weights)["recipe"]
    assert recipe["started_from"] == {"weights": str(invert_run.weights), "sha256": invert_run.sha256}
    assert stage_two.registry_entry is not None
    entry = tomllib.loads(stage_two.registry_entry.read_text())["tasks"]["invert"]["weights"]["stage-two"]
    assert entry["recipe"]["started_from"]["sha256"] == invert_run.sha256


def _git_repository(root: Path) -> str:
    """A git repository at ``root`` with one commit; its short hash."""
    root.mkdir(parents=True)
    identity = ["-c", "user.name=imgzoo", "-c", "user.email=imgzoo@example.org"]
    for command in (["init", "-q"], [*identity, "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *command], cwd=root, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_records_only_a_checkout_of_imgzoo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = _git_repository(tmp_path / "project")
    installed = tmp_path / "project" / ".venv" / "lib" / "python3" / "site-packages" / "imgzoo" / "training"
    checkout = tmp_path / "project" / "core" / "imgzoo" / "training"
    for folder in (installed, checkout):
        folder.mkdir(parents=True)
    # A wheel installed in a virtual environment inside another repository: not that repository's commit.
    monkeypatch.setattr(training_environment, "__file__", str(installed / "environment.py"))
    assert training_environment.code_version() == {"imgzoo": imgzoo.__version__}
    # Running from a checkout (core/imgzoo/ at the top of the work tree): its commit.
    monkeypatch.setattr(training_environment, "__file__", str(checkout / "environment.py"))
    assert training_environment.code_version() == {"imgzoo": imgzoo.__version__, "git": commit}


def test_registry_entry_names_the_weights(invert_run: TrainResult) -> None:
    assert invert_run.registry_entry is not None
    entry = tomllib.loads(invert_run.registry_entry.read_text())["tasks"]["invert"]["weights"]["invert-v1"]
    checked = WeightsEntry.model_validate({**entry, "name": "invert-v1"})
    assert checked.sha256 == invert_run.sha256 and checked.file == "invert.safetensors"
    assert checked.recipe["batch_size"] == 8 and checked.metrics == pytest.approx(invert_run.metrics)
    imgzoo.add_registry(invert_run.registry_entry)
    loaded = imgzoo.load("invert", weights="invert-v1", device="cpu").weights
    assert loaded is not None and loaded.sha256 == invert_run.sha256


def test_evaluate_measures_weights_on_a_data_spec(invert_run: TrainResult, images: str) -> None:
    metrics = evaluate("invert", images, weights=str(invert_run.weights), device="cpu", max_samples=6)
    assert set(metrics) == {"l1", "psnr"} and metrics["l1"] < 0.06
    with pytest.warns(UserWarning, match="untrained"):
        untrained = evaluate("invert", images, device="cpu", max_samples=6)
    assert untrained["psnr"] < metrics["psnr"]


def test_evaluate_takes_a_dataset_object_and_a_fresh_init(invert_run: TrainResult) -> None:
    pictures = Pictures(6)
    trained = evaluate("invert", pictures, weights=invert_run.weights, device="cpu")
    assert trained["l1"] < 0.06
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fresh init was asked for: nothing to warn about
        untrained = evaluate("invert", pictures, weights=False, device="cpu")
    assert set(untrained) == {"l1", "psnr"} and untrained["psnr"] < trained["psnr"]


def test_toygan_trains_both_models(images: str, tmp_path: Path) -> None:
    recorder = Recorder()
    result = train("toygan", images, out=tmp_path, steps=4, eval_every=2, callbacks=[recorder], **QUICK)
    before = recorder.initial
    assert before.keys() == {
        "generator.mix.weight",
        "generator.mix.bias",
        "critic.score.weight",
        "critic.score.bias",
    }
    after = weights_of(tmp_path / "toygan.safetensors")
    for name, tensor in before.items():
        assert not torch.equal(after[name], tensor), f"{name} did not change"
    events = train_events(tmp_path)
    assert set(events[-1]["losses"]) == {"critic", "generator"}
    assert set(events[-1]["lr"]) == {"critic", "generator"}
    assert recorder.events[:3] == [("start", 0), ("evaluate", 2), ("checkpoint", "best")]
    assert [event for event in recorder.events[3:] if event != ("checkpoint", "best")] == [
        ("evaluate", 4),
        ("checkpoint", "step-00000004"),
        ("end", 4),
    ]
    assert result.best is not None


def test_epochs_on_a_named_dataset_and_inference_only_export(tmp_path: Path) -> None:
    # minifigs:n=10 at 16 px: 9 training pictures, 2 batches of 4 per epoch.
    result = train("toygan", "minifigs:n=10", out=tmp_path, epochs=2, export="inference", **QUICK)
    assert result.steps == 4 and result.epochs == 2
    assert _metadata(tmp_path / "toygan.safetensors")["dataset"] == {
        "spec": "minifigs:n=10",
        "train_size": 9,
        "val_size": 1,
        "image_size": 16,
    }
    assert {name.split(".")[0] for name in weights_of(tmp_path / "toygan.safetensors")} == {"generator"}
    assert imgzoo.load("toygan", weights=str(tmp_path / "toygan.safetensors"), device="cpu") is not None


def test_gradient_accumulation_matches_the_full_batch(images: str, tmp_path: Path) -> None:
    # fp32: the two compute the same sums in another order, which bf16's rounding would blur.
    exact = {**QUICK, "precision": "fp32"}
    whole = train("invert", images, out=tmp_path / "whole", steps=3, **exact)
    halves = train(
        "invert", images, out=tmp_path / "halves", steps=3, grad_accum=2, deterministic=True, **exact
    )
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run
    assert whole.weights is not None and halves.weights is not None
    a, b = weights_of(whole.weights), weights_of(halves.weights)
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


@pytest.mark.parametrize(("feature", "expected"), [("AVX512-BF16", "bf16"), (None, "fp32")])
def test_auto_precision_is_settled_once_and_recorded(
    images: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feature: str | None, expected: str
) -> None:
    from imgzoo import runtime

    monkeypatch.setattr(runtime, "cpu_bf16_feature", lambda: feature)
    result = train("invert", images, out=tmp_path, steps=2, checkpoint_every=1, **QUICK)
    assert result.weights is not None
    assert _metadata(result.weights)["recipe"]["precision"] == expected
    # A resume keeps what the run chose, even where auto would now choose otherwise.
    monkeypatch.setattr(runtime, "cpu_bf16_feature", lambda: None if feature else "AMX-BF16")
    resumed = train("invert", images, out=tmp_path, steps=3, resume=True, **QUICK)
    assert resumed.weights is not None
    assert _metadata(resumed.weights)["recipe"]["precision"] == expected


def test_bf16_and_clipping_run(images: str, tmp_path: Path) -> None:
    result = train("invert", images, out=tmp_path, steps=2, precision="bf16", grad_clip=0.5, **QUICK)
    assert result.steps == 2 and all(np.isfinite(list(result.metrics.values())))


# ── checkpoints, resume and interrupts ───────────────────────────────────────────────────────
@pytest.mark.parametrize(
    ("task", "stop_at", "full_workers", "resumed_workers"),
    # 4 steps per epoch, so both stop mid-epoch; at step 2 an evaluation is due when it resumes.
    # toy-inpaint draws random holes from each sample's generator, in training and validation.
    [("invert", 2, 0, 1), ("toygan", 3, 1, 0), ("toy-inpaint", 2, 1, 0)],
)
def test_resume_is_bitwise_exact(
    task: str,
    stop_at: int,
    full_workers: int,
    resumed_workers: int,
    images: str,
    tmp_path: Path,
    contract_tasks: None,
) -> None:
    options = {**QUICK, "steps": 7, "lr_schedule": "linear", "eval_every": 2, "checkpoint_every": 5}
    full = train(task, images, out=tmp_path / "full", **{**options, "num_workers": full_workers})
    out = tmp_path / "resumed"
    options["num_workers"] = resumed_workers
    with pytest.raises(TrainingInterrupted) as stop:
        train(task, images, out=out, callbacks=[StopAt(stop_at)], **options)
    assert (
        stop.value.step == stop_at and stop.value.checkpoint == out / "checkpoints" / f"step-0000000{stop_at}"
    )
    resumed = train(task, images, out=out, resume=True, **options)

    assert full.weights is not None and resumed.weights is not None
    expected, actual = weights_of(full.weights), weights_of(resumed.weights)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    # The log reads as one run: the same losses, evaluations and best flags, in the same order.
    assert logged_results(out) == logged_results(tmp_path / "full")
    assert resumed.metrics == full.metrics and resumed.best == full.best


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_finishes_the_step_and_leaves_a_resumable_checkpoint(
    signal_number: signal.Signals, images: str, tmp_path: Path
) -> None:
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted) as stop:
        train(
            "toygan",
            images,
            out=tmp_path,
            steps=6,
            callbacks=[StopAt(2, signal_number=signal_number)],
            **QUICK,
        )
    assert stop.value.step == 2 and stop.value.signal_number == signal_number
    assert f"interrupted by {signal_number.name} at step 2" in str(stop.value)
    state = json.loads((tmp_path / "checkpoints" / "step-00000002" / "state.json").read_text())
    assert state["task"] == "toygan" and state["step"] == 2 and state["train_config"]["steps"] == 6
    assert set(state["optimizers"]) == {"generator", "critic"}
    # The handlers of the process that called train() are back in place.
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    assert train("toygan", images, out=tmp_path, resume=True, **QUICK).steps == 6


def test_rotation_keeps_the_last_checkpoints_and_the_best(images: str, tmp_path: Path) -> None:
    result = train(
        "invert",
        images,
        out=tmp_path,
        steps=6,
        checkpoint_every=1,
        eval_every=1,
        keep_last=2,
        cache_images=True,
        **QUICK,
    )
    folder = tmp_path / "checkpoints"
    names = sorted(path.name for path in folder.iterdir())
    assert names[0] == "best" and names[2:] == ["step-00000005", "step-00000006"]
    assert (folder / "best").resolve() == folder / names[1]  # best links to its one folder
    evaluations = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    best = max(
        (event for event in evaluations if event["event"] == "eval"), key=lambda e: e["metrics"]["psnr"]
    )
    best_state = json.loads((folder / "best" / "state.json").read_text())
    assert best_state["step"] == best["step"] == result.best["step"]  # type: ignore[index]
    assert best_state["best"]["value"] == pytest.approx(best["metrics"]["psnr"])


def _flip_bit(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 1
    path.write_bytes(data)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: _flip_bit(folder / "tensors.safetensors", -1),
        lambda folder: _flip_bit(
            folder / "state.json", (folder / "state.json").read_bytes().index(b'"step": 4') + 8
        ),
    ],
    ids=["tensors", "state"],
)
def test_resume_falls_back_past_a_damaged_newest_checkpoint(damage, images: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    options = {**QUICK, "steps": 6, "checkpoint_every": 2}
    full = train("invert", images, out=tmp_path / "full", **options)
    out = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted):
        train("invert", images, out=out, callbacks=[StopAt(4)], **options)
    damage(out / "checkpoints" / "step-00000004")

    with pytest.warns(
        UserWarning, match=r"resuming from step-00000002, not from the newer step-00000004.*damaged"
    ):
        resumed = train("invert", images, out=out, resume=True, **options)

    assert full.weights is not None and resumed.weights is not None
    expected, actual = weights_of(full.weights), weights_of(resumed.weights)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert logged_results(out) == logged_results(tmp_path / "full")


def test_resume_ignores_a_half_written_last_log_line(images: str, tmp_path: Path) -> None:
    options = {**QUICK, "steps": 4}
    full = train("invert", images, out=tmp_path / "full", **options)
    out = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted):
        train("invert", images, out=out, callbacks=[StopAt(2)], **options)
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"event": "train", "step": 3, "losses": {"l1": 0.2')  # killed while writing

    resumed = train("invert", images, out=out, resume=True, **options)

    assert resumed.metrics == full.metrics
    assert logged_results(out) == logged_results(tmp_path / "full")


def test_best_checkpoint_never_goes_missing(
    images: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    best = tmp_path / "checkpoints" / "best"
    observed: list[bool] = []  # after each rename or deletion, once a best exists: does it resolve?

    def watched(operation):  # type: ignore[no-untyped-def]
        def run(*args: Any, **kwargs: Any) -> Any:
            result = operation(*args, **kwargs)
            if observed or (best / "state.json").is_file():
                observed.append((best / "state.json").is_file())
            return result

        return run

    monkeypatch.setattr(os, "replace", watched(os.replace))
    monkeypatch.setattr(shutil, "rmtree", watched(shutil.rmtree))
    result = train("invert", images, out=tmp_path, steps=6, eval_every=1, learning_rate=0.1, **QUICK)

    assert result.best is not None and result.best["step"] >= 2  # best was replaced at least once
    assert observed and all(observed)
    assert json.loads((best / "state.json").read_text())["step"] == result.best["step"]


@pytest.mark.parametrize("failure", ["safetensors", "log"])
def test_a_full_disk_is_one_line_naming_the_folder(
    failure: str,
    images: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safetensors import SafetensorError

    from imgzoo.training import report

    def no_space(*args: Any, **kwargs: Any) -> None:
        if failure == "safetensors":
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write() reports it: no file name

    if failure == "safetensors":
        monkeypatch.setattr("safetensors.torch.save_file", no_space)
    else:
        monkeypatch.setattr(report, "open", no_space, raising=False)
    out = tmp_path / "run"
    command = [
        "train",
        "invert",
        "--data",
        images,
        "--out",
        str(out),
        "--set",
        "steps=2",
        "--set",
        "device=cpu",
    ]

    assert cli.main([*command, "--set", "num_workers=0"]) == 1

    err = capsys.readouterr().err
    assert "Traceback" not in err
    # After what the run said before its first step (its cost, its small validation split):
    # the error, in one line.
    *_, line = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("imgzoo: error: cannot write ") and "No space left on device" in line
    assert err.count("imgzoo: error") == 1
    assert f"free some space in {out}" in line


def test_a_state_file_that_is_not_an_object_is_a_clear_error(images: str, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints" / "step-00000002"
    folder.mkdir(parents=True)
    (folder / "tensors.safetensors").write_bytes(b"")
    (folder / "state.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=f"{folder / 'state.json'} holds no JSON object"):
        train("invert", images, out=tmp_path, resume=True, steps=2, **QUICK)


def test_an_error_in_a_loader_worker_keeps_its_own_message(tmp_path: Path) -> None:
    options = {**QUICK, "num_workers": 1, "val_fraction": 0.0}
    with pytest.raises(DataError) as failure:
        train("invert", Pictures(8, broken=5), out=tmp_path, steps=2, **options)
    assert str(failure.value) == BROKEN_PAIR
    with pytest.raises(DataError) as failure:  # evaluation reads its pairs in this process
        evaluate("invert", Pictures(8, broken=5), weights=False, device="cpu")
    assert str(failure.value) == BROKEN_PAIR


# ── bad input fails before training starts ──────────────────────────────────────────────────
def _write_pairs(root: Path, *, partner: bool = True, same_size: bool = True) -> None:
    for side in ("A", "B"):
        (root / side).mkdir(parents=True)
    pixels = np.zeros((20, 20, 3), np.float32)
    for name in ("x", "y"):
        save_image(root / "A" / f"{name}.png", pixels)
    save_image(root / "B" / "x.png", pixels if same_size else np.zeros((24, 20, 3), np.float32))
    if partner:
        save_image(root / "B" / "y.png", pixels)


def _bad_data(kind: str, root: Path) -> str:
    if kind == "missing":
        return str(root / "nowhere")
    root.mkdir()
    if kind == "image-less":
        (root / "notes.txt").write_text("no pictures here")
    elif kind == "no partner":
        _write_pairs(root / "pairs", partner=False)
        return str(root / "pairs")
    elif kind == "size mismatch":
        _write_pairs(root / "pairs", same_size=False)
        return str(root / "pairs")
    return str(root)


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("empty", DataError, "no images found"),
        ("missing", DataError, "does not exist"),
        ("image-less", DataError, "1 other file"),
        ("no partner", DataError, "no partner"),
        ("size mismatch", DataError, "same size"),
    ],
)
def test_bad_data_fails_before_training(
    kind: str, error: type[Exception], message: str, tmp_path: Path
) -> None:
    recorder = Recorder()
    with pytest.raises(error, match=message):
        train(
            "invert",
            _bad_data(kind, tmp_path / "data"),
            out=tmp_path / "out",
            steps=2,
            callbacks=[recorder],
            **QUICK,
        )
    assert recorder.events == [] and not (tmp_path / "out").exists()


def test_too_few_images_for_a_batch(images: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fewer than one batch"):
        train("invert", images, out=tmp_path, steps=2, **{**QUICK, "batch_size": 32})


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"learnig_rate": 0.1}, "learnig_rate: .* did you mean 'learning_rate'"),
        ({"stepz": 3}, "stepz: .* did you mean 'steps'"),
        ({"lr_schedule": "cosine"}, "lr_schedule"),
        ({"grad_accum": 3}, "batch_size"),
        ({"seed": 2**63 + 1}, "seed"),
        ({"grad_clip": math.inf}, "grad_clip"),
        ({"learning_rate": math.inf}, "learning_rate"),
        ({"gain": math.nan}, "gain"),
    ],
)
def test_config_mistakes_name_the_field(
    settings: dict[str, Any], field: str, images: str, tmp_path: Path
) -> None:
    options = {**QUICK, "steps": 2, **settings}
    with pytest.raises(ConfigError, match=field):
        train("invert", images, out=tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()  # no empty output folder left behind


def test_task_and_training_settings_are_set_side_by_side_and_the_call_beats_the_file(
    images: str, tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("gain = 3.0\nlearning_rate = 0.02\nsteps = 5\nseed = 7\n")
    result = train("invert", images, tmp_path / "run", config_file=settings, steps=2, gain=2.0, **QUICK)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000002" / "state.json").read_text())
    assert result.steps == 2 and state["train_config"]["seed"] == 7
    assert state["task_config"]["gain"] == 2.0 and state["task_config"]["learning_rate"] == 0.02


def test_unknown_settings_are_one_error_that_says_where_the_valid_names_are(
    images: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        train("invert", images, tmp_path / "run", stepz=2, **{"train.steps": 2}, **QUICK)
    lines = str(caught.value).splitlines()
    where = "neither a setting of task 'invert' (`imgzoo info invert` lists them) nor a training setting"
    assert lines[0] == "invalid config for task 'invert' (from arguments):"
    assert lines[1].startswith(f"  stepz: {where} (`imgzoo train --help` lists them): did you mean 'steps'")
    assert lines[2].startswith("  train.steps: neither") and lines[2].endswith("did you mean 'steps'?")
    assert not (tmp_path / "run").exists()


def test_a_task_with_a_config_field_named_as_a_training_setting_cannot_be_trained(
    images: str, tmp_path: Path
) -> None:
    from pydantic import Field

    from toy_tasks import DeclaringPlugin, InvertConfig, InvertTask

    class SeededConfig(InvertConfig):
        seed: int = Field(0, description="A field named as a training setting.")

    class SeededTask(InvertTask):
        name = "seeded"
        Config = SeededConfig

    imgzoo.register_plugin(DeclaringPlugin(SeededTask), name="seeded")
    with pytest.raises(imgzoo.PluginError, match=r"task 'seeded' cannot be trained: .*\(seed\).* rename"):
        train("seeded", images, tmp_path / "run", steps=1, **QUICK)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", [math.inf, math.nan, 1e30])
@pytest.mark.parametrize("task", imgzoo.list_tasks())
def test_a_learning_rate_that_can_only_train_garbage_is_a_config_error(
    task: str, value: float, images: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        train(task, images, out=tmp_path / "run", learning_rate=value, steps=2, **QUICK)
    assert not (tmp_path / "run").exists()


class PoisonWeights(Callback):
    """Makes the weights infinite after step ``step``, as a run that diverges does."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, step: int, losses: Mapping[str, torch.Tensor]) -> None:
        if step == self.step:
            with torch.no_grad():
                trainer.models["model"].mix.weight.fill_(math.inf)


@pytest.mark.parametrize(
    ("log_every", "poisoned_after", "expected", "kept"),
    [
        (1, 3, "loss 'loss' is inf at step 4", ["step-00000002"]),  # found by the log of step 4
        (50, 3, "loss 'loss' is inf at step 4", ["step-00000002"]),  # by the checkpoint of step 4
        (1, 6, "mix.weight of model 'model' is not finite after step 6", ["step-00000002", "step-00000004"]),
    ],
    ids=["at-a-log", "before-a-checkpoint", "before-the-export"],
)
def test_a_run_that_diverges_stops_and_saves_nothing_that_is_not_finite(
    log_every: int, poisoned_after: int, expected: str, kept: list[str], images: str, tmp_path: Path
) -> None:
    options = {**QUICK, "steps": 6, "checkpoint_every": 2, "log_every": log_every}
    with pytest.raises(ResultError, match=re.escape(expected)) as error:
        train("invert", images, out=tmp_path, callbacks=[PoisonWeights(poisoned_after)], **options)
    assert "no weights were exported" in str(error.value) and not (tmp_path / "invert.safetensors").exists()
    assert sorted(path.name for path in (tmp_path / "checkpoints").glob("step-*")) == kept
    # The last good checkpoint is finite and resumes to finite weights.
    resumed = train("invert", images, out=tmp_path, resume=True, **options)
    assert resumed.weights is not None
    assert all(torch.isfinite(tensor).all() for tensor in weights_of(resumed.weights).values())


def test_unwritable_output_folder(images: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OutputError, match=str(blocker / "out")):
        train("invert", images, out=blocker / "out", steps=2, **QUICK)


def test_resume_needs_a_checkpoint_of_the_same_task(images: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train("invert", images, out=tmp_path, resume=True, steps=2, **QUICK)
    train("toygan", images, out=tmp_path, steps=1, **QUICK)
    with pytest.raises(CheckpointError, match="belongs to task 'toygan'"):
        train("invert", images, out=tmp_path, resume=True, steps=2, **QUICK)
    with pytest.raises(OutputExistsError, match="already holds a training run"):
        train("toygan", images, out=tmp_path, steps=2, **QUICK)


# ── command line ─────────────────────────────────────────────────────────────────────────────
def test_cli_train_interrupt_resume_and_eval(
    images: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "invert.toml"
    config.write_text("learning_rate = 0.02\nbatch_size = 2\nlog_every = 1\nnum_workers = 0\n")
    out = tmp_path / "run"
    command = [
        "train",
        "invert",
        "--data",
        images,
        "--out",
        str(out),
        "--config",
        str(config),
        *("--set", "steps=4", "--set", "eval_every=2", "--set", "gain=1.0"),
        *("--set", "device=cpu", "--set", "seed=1"),
    ]
    real_train = training_api.train
    monkeypatch.setattr(training_api, "train", lambda *a, **k: real_train(*a, callbacks=[StopAt(2)], **k))
    assert cli.main(command) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(training_api, "train", real_train)

    assert cli.main([*command, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "[tasks.invert.weights.run]" in printed and "sha256" in printed
    state = json.loads((out / "checkpoints" / "step-00000004" / "state.json").read_text())
    assert state["train_config"]["batch_size"] == 2 and state["train_config"]["eval_every"] == 2
    assert state["train_config"]["seed"] == 1 and state["task_config"]["learning_rate"] == 0.02

    assert (
        cli.main(["eval", "invert", "--data", images, "--weights", str(out / "invert.safetensors"), "--json"])
        == 0
    )
    assert set(json.loads(capsys.readouterr().out)["metrics"]) == {"l1", "psnr"}
    assert (
        cli.main(["train", "invert", "--data", images, "--out", str(tmp_path / "x"), "--set", "nope=1"]) == 1
    )
    assert "nope: neither a setting of task 'invert'" in capsys.readouterr().err


def test_running_out_of_memory_in_the_measured_first_step_is_one_line_before_the_run(
    images: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toy_tasks import InvertTask

    def training_step(*args: object) -> None:  # what PyTorch's CPU allocator raises
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(InvertTask, "training_step", training_step)
    out = tmp_path / "oom"
    assert cli.main(["train", "invert", "--data", images, "--out", str(out), "--set", "steps=2"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("imgzoo: error:")]
    assert len(errors) == 1 and "ran out of memory in its first step" in errors[0]
    assert "batch_size" in errors[0] and not (out / "invert.safetensors").exists()
    with pytest.raises(imgzoo.MemoryBudgetError, match="before the run starts"):
        train("invert", images, tmp_path / "oom-api", steps=2, **QUICK)


# The imgzoo command with the test-only tasks registered, run as a process of its own.
IMGZOO_COMMAND = """
import sys
sys.path[:0] = {paths!r}
import imgzoo
from toy_tasks import ToyTasksPlugin
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
from imgzoo import cli
sys.exit(cli.main(sys.argv[1:]))
"""


# Trains for more steps than any test waits for.
TRAIN_FOREVER = [
    *("train", "invert", "--set", "steps=1000000", "--set", "device=cpu", "--set", "batch_size=2"),
    *("--set", "log_every=1", "--set", "progress=false"),
]


def start_training(images: str, out: Path, script: Path, *, workers: int = 0) -> subprocess.Popen[str]:
    """``imgzoo train invert`` for more steps than a test waits for, in a process group of its
    own (with its loader workers), once it logs its first step."""
    paths = [str(REPO / "core"), str(REPO / "plugins"), str(REPO / "tests")]
    script.write_text(IMGZOO_COMMAND.format(paths=paths))
    command = [*TRAIN_FOREVER, "--data", images, "--out", str(out), "--set", f"num_workers={workers}"]
    process = subprocess.Popen(
        [sys.executable, str(script), *command],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120  # only so that a broken run cannot hang the test suite
    while not (out / "metrics.jsonl").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"training did not start: {process.communicate()[1][-3000:]}")
        time.sleep(0.05)
    return process


@pytest.mark.parametrize(
    ("workers", "whole_group"),
    [(0, False), (2, True)],
    # kill and docker stop signal the main process; systemd and Slurm every process of the run.
    ids=["to-the-process", "to-it-and-its-loader-workers"],
)
def test_sigterm_finishes_the_step_and_leaves_a_resumable_checkpoint(
    workers: int, whole_group: bool, images: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    process = start_training(images, out, tmp_path / "imgzoo_command.py", workers=workers)
    if whole_group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.terminate()
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGTERM, stderr
    stopped = re.search(r"training interrupted by SIGTERM at step (\d+); checkpoint saved to (\S+)", stderr)
    assert stopped is not None, stderr
    step, checkpoint = int(stopped[1]), Path(stopped[2])
    assert checkpoint == out / "checkpoints" / f"step-{step:08d}"
    assert json.loads((checkpoint / "state.json").read_text())["step"] == step
    assert f"resume with: imgzoo train invert --data {images} --out {out} --resume" in stderr

    resume = [*TRAIN_FOREVER, "--data", images, "--out", str(out), "--resume", "--set", f"steps={step + 1}"]
    resume += ["--set", "num_workers=0"]
    assert cli.main(resume) == 0
    assert f"trained invert for {step + 1} steps" in capsys.readouterr().out
    assert [event["step"] for event in train_events(out)] == list(range(1, step + 2))


def test_a_second_run_in_the_same_folder_fails_at_once_and_a_killed_one_blocks_nothing(
    images: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    first = start_training(images, out, tmp_path / "imgzoo_command.py")
    second = [
        "train",
        "invert",
        "--data",
        images,
        "--out",
        str(out),
        "--set",
        "steps=2",
        "--set",
        "device=cpu",
        "--set",
        "val_fraction=0",  # no validation split to warn about: the error is all it says
    ]
    try:
        assert cli.main(second) == 1
    finally:
        first.kill()  # SIGKILL: no chance to clean anything up
        first.communicate(timeout=120)
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"imgzoo: error: {out} is in use by another training run (process {first.pid})")

    assert (out / "train.lock").exists()  # left behind by the killed run, and harmless
    assert cli.main([*second, "--set", "num_workers=0"]) == 0
    assert (out / "invert.safetensors").exists()


# ── several processes ────────────────────────────────────────────────────────────────────────
DDP_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import imgzoo
from toy_tasks import ToyTasksPlugin
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
from imgzoo.training import train
train("toygan", {data!r}, out={out!r}, **{options!r})
"""


def _train_as_rank(rank: int, port: int, images: str, out: Path, outcome: Path) -> None:
    """One process of a two-process run (in a forked child): writes how ``train`` ended."""
    os.environ.update(
        WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    try:
        train("invert", images, out=out, steps=2, **QUICK)
        outcome.write_text("finished")
    except Exception as error:
        outcome.write_text(f"{type(error).__name__}: {error}")


@pytest.mark.parametrize("problem", ["earlier run", "unwritable"])
def test_a_failed_check_stops_every_process(problem: str, images: str, tmp_path: Path) -> None:
    if problem == "earlier run":
        out = tmp_path / "run"
        for name in ("state.json", "tensors.safetensors"):
            (out / "checkpoints" / "step-00000001").mkdir(parents=True, exist_ok=True)
            (out / "checkpoints" / "step-00000001" / name).write_text("")
        kind, expected = "OutputExistsError", "already holds a training run"
    else:
        (tmp_path / "file").write_text("a file, not a folder")
        kind, expected = "OutputError", "cannot write to the output folder"
        out = tmp_path / "file" / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fork = multiprocessing.get_context("fork")
    outcomes = [tmp_path / f"rank{rank}.txt" for rank in (0, 1)]
    processes = [
        fork.Process(target=_train_as_rank, args=(rank, port, images, out, outcomes[rank])) for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        if process.is_alive():
            process.kill()
            process.join()
    ended = [path.read_text() if path.exists() else "hung" for path in outcomes]
    assert ended[0].startswith(f"{kind}: ") and expected in ended[0]
    assert ended[1] == "ZooError: process 1 stopped: a check failed in the main process (see its error)"


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(images: str, tmp_path: Path) -> None:
    options = {**QUICK, "steps": 5, "lr_schedule": "linear", "eval_every": 2, "log_every": 2}
    options.update(checkpoint_every=2, precision="fp32")  # fp32: equal up to the order of sums
    single = train("toygan", images, out=tmp_path / "single", **options)
    script = tmp_path / "ddp.py"
    paths = [str(REPO / "core"), str(REPO / "plugins"), str(REPO / "tests")]
    script.write_text(DDP_SCRIPT.format(paths=paths, data=images, out=str(tmp_path / "ddp"), options=options))
    completed = run_two_processes(script)
    assert completed.returncode == 0, completed.stderr[-3000:]

    assert single.weights is not None
    expected, actual = weights_of(single.weights), weights_of(tmp_path / "ddp" / "toygan.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.allclose(expected[name], actual[name], rtol=1e-5, atol=1e-6), name
    # Only the main process writes: the same checkpoints, and one line per event, as in a single
    # process.
    assert _listing(tmp_path / "ddp" / "checkpoints") == _listing(tmp_path / "single" / "checkpoints")
    assert [e["step"] for e in train_events(tmp_path / "ddp")] == [
        e["step"] for e in train_events(tmp_path / "single")
    ]
    assert _metadata(tmp_path / "ddp" / "toygan.safetensors")["recipe"]["processes"] == 2


def run_two_processes(script: Path) -> subprocess.CompletedProcess[str]:
    """``script`` run by torchrun in two CPU processes, one thread each."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*launch, str(script)], env=environment, capture_output=True, text=True, timeout=240, check=False
    )


def _listing(folder: Path) -> list[str]:
    # The best checkpoint's folder carries a random suffix (see checkpoint.write_best_checkpoint).
    names = (path.relative_to(folder).as_posix() for path in folder.rglob("*"))
    return sorted(re.sub(r"^(best-\d+)-[0-9a-f]+", r"\1", name) for name in names)


def _metadata(path: Path) -> dict[str, Any]:
    return load_weights(path)[1]


def test_public_names() -> None:
    import imgzoo.training

    assert sorted(imgzoo.training.__all__) == sorted(
        ["Callback", "TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "evaluate", "train"]
    )
    assert imgzoo.train is train and imgzoo.evaluate is evaluate


# ── what a run costs: a time budget, the plan said up front, the shipped recipe ──────────────
@pytest.mark.parametrize(
    ("given", "seconds"), [("90s", 90), ("20m", 1200), ("2h", 7200), ("1.5h", 5400), (45, 45), ("30", 30)]
)
def test_max_time_takes_seconds_or_a_number_and_a_unit(given: object, seconds: float) -> None:
    assert build_train_config("invert", [("arguments", {"max_time": given})]).max_time == seconds


def test_a_max_time_that_is_no_duration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"max_time.*'20 minutes' is not a duration: .*90s, 20m, 2h"):
        build_train_config("invert", [("arguments", {"max_time": "20 minutes"})])


def test_max_time_alone_ends_the_run_and_beside_steps_whichever_comes_first() -> None:
    alone = build_train_config("invert", [("arguments", {"max_time": "2h"})])
    assert alone.steps is None and alone.epochs is None
    both = build_train_config("invert", [("the file", {"steps": 50}), ("arguments", {"max_time": 60})])
    assert both.steps is None  # a later layer's budget alone replaces the earlier length
    capped = build_train_config("invert", [("arguments", {"max_time": 60, "steps": 50})])
    assert (capped.steps, capped.max_time) == (50, 60)


def test_a_time_budget_stops_the_run_writes_its_weights_and_fits_the_schedule(
    images: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {**QUICK, "log_every": 1, "eval_every": 10**6, "checkpoint_every": 10**6}
    result = train("invert", images, out=tmp_path, max_time=2, lr_schedule="linear", **options)
    assert result.weights is not None and result.weights.is_file()
    assert result.checkpoint is not None and (result.checkpoint / "state.json").is_file()
    assert result.steps > 1 and _metadata(result.weights)["recipe"]["max_time"] == 2
    # The linear schedule decays towards the step the budget allowed, planned as the run went.
    rates = [event["lr"]["model"] for event in logged_results(tmp_path) if event["event"] == "train"]
    assert len(rates) == result.steps and rates[-1] < 0.5 * rates[0]
    assert "a budget of 2 s" in capsys.readouterr().err


def test_the_cost_is_said_before_the_first_step_and_short_runs_log_a_curve(
    images: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class FirstStep(Callback):
        said = ""

        def on_step_end(self, trainer: Any, step: int, losses: Any) -> None:
            if step == 1:
                FirstStep.said = capsys.readouterr().err

    result = train(
        "invert", images, out=tmp_path, steps=60, callbacks=[FirstStep()], **{**QUICK, "log_every": "auto"}
    )
    said = FirstStep.said.strip().splitlines()[-1]
    assert said.startswith("training invert for 60 steps of 4 pictures at 16 px, fp32 on cpu: about ")
    assert re.search(
        r"here \(\d+\.\d\d s a step, measured\); results in " + re.escape(str(tmp_path)) + "$", said
    )
    logged = [event for event in logged_results(tmp_path) if event["event"] == "train"]
    assert result.steps == 60 and len(logged) >= 20  # log_every 'auto' is 3 here


def test_a_small_validation_split_is_a_warning_naming_its_size(tmp_path: Path) -> None:
    folder = tmp_path / "twelve"
    rng = np.random.default_rng(0)
    for index in range(12):
        save_image(folder / f"{index:02d}.png", rng.random((20, 20, 3)).astype(np.float32))
    with pytest.warns(
        UserWarning, match=r"the validation split holds 1 picture\(s\) \(0\.1 of 12\).*160 give 16"
    ):
        train("invert", str(folder), out=tmp_path / "run", steps=1, **QUICK)


def test_a_fresh_model_follows_the_recipe_of_the_shipped_weights(tmp_path: Path, images: str) -> None:
    path = tmp_path / "invert.safetensors"
    sha256 = write_invert_weights(path)
    registry = tmp_path / "registry.toml"
    write_registry(registry, "invert", {"shipped": (path.name, sha256)}, default="shipped")
    registry.write_text(registry.read_text() + "recipe = { steps = 900, image_size = 12, batch_size = 6 }\n")
    imgzoo.add_registry(registry)
    unsized = {name: value for name, value in QUICK.items() if name != "batch_size"}
    fresh = train("invert", images, out=tmp_path / "fresh", steps=1, **unsized)
    assert fresh.weights is not None
    recipe, config = _metadata(fresh.weights)["recipe"], _metadata(fresh.weights)["config"]
    assert (recipe["batch_size"], recipe["steps"], config["image_size"]) == (6, 1, 12)
    told = train("invert", images, out=tmp_path / "told", steps=1, image_size=16, **QUICK)
    assert told.weights is not None
    recipe, config = _metadata(told.weights)["recipe"], _metadata(told.weights)["config"]
    assert (recipe["batch_size"], config["image_size"]) == (4, 16)
    # Weights to start from bring their own settings: the recipe is for a fresh model only.
    tuned = train("invert", images, out=tmp_path / "tuned", steps=1, weights=path, **unsized)
    assert tuned.weights is not None and _metadata(tuned.weights)["recipe"]["batch_size"] == 8


def test_train_takes_a_time_budget_on_the_command_line(
    images: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["train", "invert", "--data", images, "--out", str(tmp_path), "--max-time", "1s"]
    settings = ["--set", "batch_size=4", "--set", "num_workers=0", "--set", "device=cpu"]
    assert cli.main([*command, *settings]) == 0
    assert "for a budget of 1 s" in capsys.readouterr().err
    assert _metadata(tmp_path / "invert.safetensors")["recipe"]["max_time"] == 1
