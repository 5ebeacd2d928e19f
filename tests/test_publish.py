"""``imgzoo publish``: a finished run as a folder for the Hugging Face Hub (weights, model card,
registry entry, sample grid), whose card's metadata huggingface_hub reads and whose registry
entry loads the weights once the folder is in a Hub cache. The upload itself is not tested."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

import imgzoo
from fake_hub import put_in_hub_cache
from imgzoo import cli
from imgzoo.errors import OutputExistsError
from imgzoo.images import save_image
from imgzoo.publishing import publish
from imgzoo.registry_file import read_registry_file
from imgzoo.training import TrainResult, train

pytestmark = pytest.mark.usefixtures("toy_tasks")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A short invert run with a validation split, so that it has metrics and a sample grid."""
    from toy_tasks import ToyTasksPlugin

    images = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(8):
        save_image(images / f"{index}.png", rng.random((20, 20, 3)).astype(np.float32))
    name = imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks-module")
    try:
        return train(
            "invert",
            str(images),
            out=tmp_path_factory.mktemp("runs") / "invert-demo",
            steps=2,
            eval_every=2,
            grid_rows=1,
            batch_size=2,
            val_fraction=0.25,
            device="cpu",
            num_workers=0,
            progress=False,
        )
    finally:
        imgzoo.unregister_plugin(name)


def test_a_run_becomes_a_hub_folder_whose_card_huggingface_hub_reads(
    finished_run: TrainResult, tmp_path: Path
) -> None:
    published = publish(finished_run.out_dir, tmp_path / "hub", repo="me/invert-demo", license="mit")

    folder = tmp_path / "hub"
    assert sorted(path.name for path in folder.iterdir()) == [
        "README.md",
        "invert.safetensors",
        "registry-entry.toml",
        "samples.png",
    ]
    assert published.address == "hf://me/invert-demo/invert.safetensors"
    assert (folder / "invert.safetensors").read_bytes() == Path(finished_run.weights or "").read_bytes()
    newest_grid = sorted((finished_run.out_dir / "samples").glob("*.png"))[-1]
    assert (folder / "samples.png").read_bytes() == newest_grid.read_bytes()

    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit" and card.data.library_name == "imgzoo"
    assert card.data.pipeline_tag == "image-to-image" and "invert" in card.data.tags
    text = card.text
    assert 'imgzoo.run("invert", "photo.png", weights="hf://me/invert-demo/invert.safetensors")' in text
    assert (
        "imgzoo run invert photo.png -o result.png --weights hf://me/invert-demo/invert.safetensors" in text
    )
    for metric, value in finished_run.metrics.items():
        assert f"| {metric} | {value:.4g} |" in text
    assert "imgzoo eval invert --data DATA --weights hf://me/invert-demo/invert.safetensors --json" in text
    assert "2 for validation" in text and '"steps": 2' in text
    assert "![input, output and target of validation pictures](samples.png)" in text
    assert "imgzoo export invert --weights hf://me/invert-demo/invert.safetensors --standalone" in text


def test_the_registry_entry_names_the_hub_address_and_loads_once_the_folder_is_on_the_hub(
    finished_run: TrainResult, tmp_path: Path, hub_cache: Path
) -> None:
    publish(finished_run.out_dir, tmp_path / "hub", repo="me/invert-demo", license="mit")
    entry_file = tmp_path / "hub" / "registry-entry.toml"
    entry = read_registry_file(entry_file)["invert"]["weights"]["invert-demo"]
    weights = tmp_path / "hub" / "invert.safetensors"
    assert entry["file"] == "hf://me/invert-demo/invert.safetensors"
    assert entry["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest() and entry["license"] == "mit"

    put_in_hub_cache(hub_cache, "me/invert-demo", "invert.safetensors", weights)  # as a push would
    imgzoo.add_registry(entry_file)
    loaded = imgzoo.load("invert", "invert-demo")
    assert loaded.weights is not None and loaded.weights.path is not None
    assert loaded.weights.path.read_bytes() == weights.read_bytes()
    assert imgzoo.task_info("invert").weights["invert-demo"].card == "https://huggingface.co/me/invert-demo"


def test_a_lone_weights_file_publishes_without_a_grid_under_a_placeholder_repository(
    finished_run: TrainResult, tmp_path: Path
) -> None:
    assert finished_run.weights is not None
    published = publish(finished_run.weights, tmp_path / "hub", license="apache-2.0")

    assert published.address == "hf://OWNER/REPO/invert.safetensors"
    assert not (tmp_path / "hub" / "samples.png").exists()
    card = ModelCard.load(tmp_path / "hub" / "README.md")
    assert card.data.license == "apache-2.0" and "samples.png" not in card.text


def test_the_cli_refuses_a_folder_with_files_and_a_missing_licence_in_one_line(
    finished_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, out = str(finished_run.out_dir), str(tmp_path / "hub")
    assert cli.main(["publish", run, "-o", out]) == 1
    assert "--license" in capsys.readouterr().err

    assert cli.main(["publish", run, "-o", out, "--repo", "me/invert-demo", "--license", "mit"]) == 0
    printed = capsys.readouterr().out
    assert "README.md" in printed and "--push me/invert-demo" in printed

    assert cli.main(["publish", run, "-o", out, "--license", "mit"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("imgzoo: error: ") and "--overwrite" in error and error.count("\n") == 1
    with pytest.raises(OutputExistsError):
        publish(run, out, license="mit")
    assert cli.main(["publish", run, "-o", out, "--license", "mit", "--overwrite"]) == 0
    assert "OWNER/REPO" in (tmp_path / "hub" / "registry-entry.toml").read_text()

    assert cli.main(["publish", run, "-o", out, "--repo", "not a repo", "--license", "mit"]) == 1
    assert "OWNER/REPO" in capsys.readouterr().err


def test_pushing_offline_is_one_line_and_writes_the_folder_first(
    finished_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str], hub_cache: Path
) -> None:
    out = tmp_path / "hub"
    argv = [
        "publish",
        str(finished_run.out_dir),
        "-o",
        str(out),
        "--push",
        "me/invert-demo",
        "--license",
        "mit",
    ]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert (
        "cannot push to me/invert-demo while offline (HF_HUB_OFFLINE=1)" in error and error.count("\n") == 1
    )
    assert (out / "README.md").is_file()


def test_pushing_without_huggingface_hub_names_the_extra(
    finished_run: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(imgzoo.MissingExtraError, match=r"pip install 'imgzoo\[hub\]'"):
        publish(finished_run.out_dir, tmp_path / "hub", repo="me/invert-demo", license="mit", push=True)
