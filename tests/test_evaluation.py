"""How much evaluation costs by default, and what an evaluation says it measured: the trainer's
validation passes and ``imgzoo eval``, on the test-only ``invert`` task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import imgzoo
from imgzoo import cli
from imgzoo.data import Sample
from imgzoo.errors import DataError
from imgzoo.images import save_image
from imgzoo.training import evaluate, train
from imgzoo.training.cli import EVAL_LIMIT
from imgzoo.training.evaluation import AUTO_EVAL_MINIMUM, evaluation_size, spread_indices
from toy_tasks import InvertTask, write_invert_weights, write_registry

pytestmark = pytest.mark.usefixtures("toy_tasks")

QUICK = {"batch_size": 4, "device": "cpu", "num_workers": 0, "progress": False, "log_every": 1}


class CountedPictures:
    """``count`` random 16x16 pictures that remember which indices were read."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read: set[int] = set()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        self.read.add(index)
        return Sample(np.random.default_rng(index).random((16, 16, 3), dtype=np.float32), name=str(index))


def eval_events(out: Path) -> list[dict[str, object]]:
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [event for event in events if event["event"] == "eval"]


# ── the trainer ──────────────────────────────────────────────────────────────────────────────
def test_auto_evaluation_size_follows_the_length_of_the_run() -> None:
    assert evaluation_size("auto", available=1000, trained_images=3 * 8) == AUTO_EVAL_MINIMUM
    assert evaluation_size("auto", available=1000, trained_images=300) == 300
    assert evaluation_size("auto", available=1000, trained_images=1000 * 8) == 1000
    assert evaluation_size("auto", available=10, trained_images=24) == 10
    assert evaluation_size(None, available=1000, trained_images=24) == 1000
    assert evaluation_size(100, available=1000, trained_images=8000) == 100


def test_spread_indices_cover_the_data_evenly() -> None:
    assert spread_indices(4, 10) == [0, 2, 5, 7]
    assert spread_indices(3, 3) == [0, 1, 2]
    assert spread_indices(5, 2) == [0, 1]


def test_a_short_run_evaluates_a_few_pictures_once_and_never_at_step_0(tmp_path: Path) -> None:
    pictures = CountedPictures(400)  # 200 validation pictures at val_fraction 0.5
    val_indices = set(imgzoo.data.train_val_split(pictures, val_fraction=0.5, seed=0)[1].indices)
    result = train("invert", pictures, out=tmp_path, steps=3, val_fraction=0.5, **QUICK)

    events = eval_events(tmp_path)
    assert [event["step"] for event in events] == [3]
    assert events[0]["images"] == AUTO_EVAL_MINIMUM
    assert len(pictures.read & val_indices) == AUTO_EVAL_MINIMUM
    assert result.metrics


def test_a_long_enough_run_evaluates_its_whole_validation_split(tmp_path: Path) -> None:
    pictures = CountedPictures(160)  # 80 validation pictures; 20 steps of 4 train on 80 images
    val_indices = set(imgzoo.data.train_val_split(pictures, val_fraction=0.5, seed=0)[1].indices)
    train("invert", pictures, out=tmp_path, steps=20, eval_every=10, val_fraction=0.5, **QUICK)

    assert [(event["step"], event["images"]) for event in eval_events(tmp_path)] == [(10, 80), (20, 80)]
    assert pictures.read >= val_indices


def test_eval_samples_none_still_means_every_validation_picture(tmp_path: Path) -> None:
    pictures = CountedPictures(400)
    train("invert", pictures, out=tmp_path, steps=1, val_fraction=0.5, eval_samples=None, **QUICK)
    assert [event["images"] for event in eval_events(tmp_path)] == [200]


# ── imgzoo eval ──────────────────────────────────────────────────────────────────────────────
def test_evaluation_measures_a_spread_sample_of_the_data() -> None:
    pictures = CountedPictures(50)
    evaluation = evaluate("invert", pictures, weights=False, device="cpu", max_samples=10, precision="fp32")
    assert pictures.read == set(range(0, 50, 5))
    assert evaluation.data == {
        "spec": repr(pictures),
        "images": 10,
        "available": 50,
        "mode": "model",
        "precision": "fp32",
    }


@pytest.fixture
def weights_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "invert.safetensors"
    return path, write_invert_weights(path)


def test_eval_json_names_the_weights_and_data_and_caps_the_default(
    tmp_path: Path, weights_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, sha256 = weights_file
    folder = tmp_path / "pictures"
    rng = np.random.default_rng(0)
    for index in range(EVAL_LIMIT + 10):
        save_image(folder / f"{index:04d}.png", rng.random((4, 4, 3)).astype(np.float32))

    command = ["eval", "invert", "--data", str(folder), "--weights", str(path), "--device", "cpu", "--json"]
    command += ["--precision", "fp32"]
    assert cli.main(command) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == {"name": path.name, "path": str(path), "sha256": sha256}
    assert report["data"] == {
        "spec": str(folder),
        "images": EVAL_LIMIT,
        "available": EVAL_LIMIT + 10,
        "mode": "model",
        "precision": "fp32",
    }
    assert report["task"] == "invert" and report["metrics"]["l1"] < 1e-6

    assert cli.main([*command, "--all"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["images"] == EVAL_LIMIT + 10
    assert cli.main([*command, "--limit", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["images"] == 7


@pytest.mark.parametrize(
    ("feature", "flags", "expected"),
    [("AMX-BF16", [], "bf16"), (None, [], "fp32"), ("AMX-BF16", ["--precision", "fp32"], "fp32")],
)
def test_eval_runs_at_auto_precision_like_run_unless_told(
    weights_file: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    feature: str | None,
    flags: list[str],
    expected: str,
) -> None:
    from imgzoo import runtime

    monkeypatch.setattr(runtime, "cpu_bf16_feature", lambda: feature)
    command = ["eval", "invert", "--data", "minifigs:n=2", "--weights", str(weights_file[0]), "--json"]
    assert cli.main([*command, "--device", "cpu", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["precision"] == expected
    default = evaluate("invert", "minifigs:n=2", weights=weights_file[0], device="cpu")
    assert default.data["precision"] == ("bf16" if feature else "fp32")


def test_eval_names_registered_weights_and_says_how_many_images_it_measured(
    tmp_path: Path, weights_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, sha256 = weights_file
    write_registry(tmp_path / "registry.toml", "invert", {"exact": (path.name, sha256)})
    imgzoo.add_registry(tmp_path / "registry.toml")
    data = "minifigs:n=20"

    assert (
        cli.main(["eval", "invert", "--data", data, "--weights", "exact", "--device", "cpu", "--limit", "5"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"exact ({path}, sha256 {sha256})" in printed
    assert "5 of 20 images" in printed and "--all" in printed


# ── the whole pipeline, at each picture's own size ───────────────────────────────────────────
class ConstantPictures:
    """Pictures of one gray value each, of different sizes: (value, height, width)."""

    def __init__(self, *pictures: tuple[float, int, int]) -> None:
        self.pictures = pictures

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, index: int) -> Sample:
        value, height, width = self.pictures[index]
        return Sample(np.full((height, width, 3), value, np.float32), name=f"gray-{value}")


def test_pipeline_evaluation_runs_each_picture_at_its_own_size(tmp_path: Path) -> None:
    # invert's input is 1 - truth; these weights return 0.8 (1 - input) = 0.8 truth, so a truth
    # of 0.5 comes back 0.1 too dark (20 dB) and one of 0.25 0.05 too dark (26.02 dB).
    path = tmp_path / "dim.safetensors"
    write_invert_weights(path, gain=0.8)
    pictures = ConstantPictures((0.5, 16, 16), (0.25, 8, 12))
    evaluation = evaluate("invert", pictures, weights=path, device="cpu", mode="pipeline")
    assert evaluation.data["mode"] == "pipeline" and evaluation.data["images"] == 2
    assert [item["name"] for item in evaluation.per_image] == ["gray-0.5", "gray-0.25"]
    assert evaluation.per_image[0]["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert evaluation.per_image[1]["psnr"] == pytest.approx(10 * np.log10(1 / 0.05**2), abs=1e-3)
    assert evaluation["psnr"] == pytest.approx((20.0 + 10 * np.log10(400)) / 2, abs=1e-3)
    assert evaluation["l1"] == pytest.approx(0.075, abs=1e-5)
    assert evaluation.report()["per_image"] == evaluation.per_image


def test_pipeline_evaluation_needs_a_task_that_can_degrade_a_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(InvertTask, "degrade", imgzoo.Task.degrade)
    with pytest.raises(DataError, match=r"'invert' cannot make its input .*paired:DIR"):
        evaluate("invert", ConstantPictures((0.5, 8, 8)), weights=False, device="cpu", mode="pipeline")
    folder = tmp_path / "pictures"
    save_image(folder / "a.png", np.zeros((4, 4, 3), np.float32))
    assert cli.main(["eval", "invert", "--data", str(folder), "--weights", "none", "--full-resolution"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the untrained model's warning
    assert error.startswith("imgzoo: error: task 'invert' cannot make its input") and error.endswith(
        "--full-resolution"
    )


def test_a_two_input_task_is_evaluated_at_full_resolution_on_a_named_dataset_the_same_twice(
    contract_tasks: None, tmp_path: Path
) -> None:
    # toy-inpaint's degrade() makes the holed picture and its mask, with holes drawn from the
    # generator it is given: minifigs has no masks, yet the task is measured on it at its size.
    from test_front_ends import seeded_weights

    weights = seeded_weights("toy-inpaint", tmp_path / "inpaint.safetensors")
    runs = [
        evaluate("toy-inpaint", "minifigs:n=3", weights=weights, mode="pipeline", resolution=24)
        for _ in range(2)
    ]
    assert runs[0].data["images"] == 3 and runs[0] == runs[1]
    assert runs[0].per_image == runs[1].per_image
    assert 0 < runs[0]["l1"] < 0.3  # the holes alone differ: a whole picture would be far off
