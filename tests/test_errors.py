"""Each kind of failure raises its own ZooError subclass, carrying what a caller needs to act on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo.cli import main
from imgzoo.images import save_image, save_result
from imgzoo.scaffold import new_plugin
from imgzoo_edges2photo.unet import FusedUNet, build_unet

pytestmark = pytest.mark.usefixtures("toy_tasks")


def test_an_unknown_device_is_a_device_error() -> None:
    with pytest.raises(imgzoo.DeviceError, match="unknown device 'quantum'") as caught:
        imgzoo.load("invert", weights=False, device="quantum")
    assert caught.value.device == "quantum" and isinstance(caught.value, ValueError)


def test_a_device_that_is_not_here_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    with pytest.raises(imgzoo.DeviceError, match="CUDA is not available here") as caught:
        imgzoo.load("invert", weights=False, device="cuda:7")
    assert caught.value.device == "cuda:7"


def test_a_malformed_registry_file_is_a_registry_error(tmp_path: Path) -> None:
    broken = tmp_path / "registry.toml"
    broken.write_text("[tasks\n")
    with pytest.raises(imgzoo.RegistryError, match="is not valid TOML") as caught:
        imgzoo.add_registry(broken)
    assert caught.value.path == broken
    with pytest.raises(imgzoo.RegistryError, match="cannot read registry file") as caught:
        imgzoo.add_registry(tmp_path / "missing.toml")


def test_a_nul_in_an_output_path_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(imgzoo.OutputError, match="contains a NUL byte"):
        imgzoo.run("invert", np.zeros((2, 2, 3), np.uint8), weights=False, output=f"{tmp_path}/a\x00.png")


def test_a_float_map_saved_as_an_image_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(imgzoo.OutputError, match=r"float map.*write it to a \.npy file") as caught:
        save_result(tmp_path / "depth.png", np.zeros((2, 2, 1), np.float32), "map")
    assert caught.value.path == tmp_path / "depth.png"
    assert not (tmp_path / "depth.png").exists()


def test_a_new_plugin_needs_a_valid_name_and_a_free_folder(tmp_path: Path) -> None:
    with pytest.raises(imgzoo.ArgumentError, match="cannot name a task 'Bad Name'") as caught:
        new_plugin("Bad Name", tmp_path)
    assert caught.value.argument == "task"
    taken = tmp_path / "imgzoo-sharpen"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(imgzoo.OutputExistsError, match="already exists and is not empty") as exists:
        new_plugin("sharpen", tmp_path)
    assert exists.value.path == taken and (taken / "notes.txt").read_text() == "mine"


def test_fusing_a_generator_in_training_mode_is_an_argument_error() -> None:
    generator = build_unet(ngf=4, num_downs=3)
    with pytest.raises(imgzoo.ArgumentError, match="only an eval-mode generator can be fused"):
        FusedUNet(generator.train())
    assert isinstance(FusedUNet(generator.eval()), torch.nn.Module)


def test_cli_errors_are_one_line_and_classified(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = tmp_path / "in.png"
    save_image(image, np.zeros((2, 2, 3), np.float32))
    assert main(["run", "invert", str(image), "--input", "mask", "-o", str(tmp_path / "out")]) == 1
    assert "imgzoo: error: --input 'mask': write NAME=PATH" in capsys.readouterr().err

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    assert main(["run", "invert", str(image), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "invalid setting (from the environment)" in err
    assert "RANK=5 and WORLD_SIZE=2 do not describe a process of a run" in err


def test_resuming_from_a_truncated_only_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    from imgzoo.training.checkpoint import checkpoint_dir, resume_point, write_checkpoint

    folder = write_checkpoint(
        checkpoint_dir(tmp_path, 3), {"model.toy.weight": torch.ones(4)}, {"task": "toy"}
    )
    tensors = folder / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:20])  # a crash or a bad disk cut it short

    with pytest.raises(imgzoo.CheckpointError, match="is not a safetensors weights file") as caught:
        resume_point(tmp_path, "toy", warn=False)
    assert caught.value.path == folder


def test_resuming_from_another_tasks_checkpoint_names_its_folder(tmp_path: Path) -> None:
    from imgzoo.training.checkpoint import checkpoint_dir, read_checkpoint, resume_point, write_checkpoint
    from imgzoo.training.state import RunState

    folder = checkpoint_dir(tmp_path, 1)
    write_checkpoint(
        folder, {"model.toy.weight": torch.ones(1)}, {"task": "toy", "version": RunState.VERSION}
    )
    _, raw = read_checkpoint(folder)
    with pytest.raises(imgzoo.CheckpointError, match="its run state lacks") as caught:
        RunState.from_dict(raw, source=folder)
    assert caught.value.path == folder
    with pytest.raises(imgzoo.CheckpointError, match="nothing to resume") as caught:
        resume_point(tmp_path / "empty", "toy")
    assert caught.value.path == tmp_path / "empty" / "checkpoints"


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_samples": 0}, "max_samples"),
        ({"mode": "fast"}, "mode"),
        ({"resolution": 0}, "resolution"),
    ],
)
def test_evaluate_names_the_argument_out_of_range(arguments: dict[str, object], argument: str) -> None:
    with pytest.raises(imgzoo.ArgumentError) as caught:
        imgzoo.evaluate("colorize", "minifigs", **arguments)  # type: ignore[arg-type]
    assert caught.value.argument == argument


def test_an_optimizer_without_trainable_parameters_is_a_bug_of_the_task() -> None:
    from imgzoo.training.distributed import Distributed
    from imgzoo.training.step import TrainingStep

    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(
        imgzoo.TaskBugError, match="optimizer 'generator' without trainable parameters"
    ) as caught:
        TrainingStep(
            "toy",
            {"model": frozen},
            {"generator": torch.optim.SGD(frozen.parameters(), lr=0.1)},
            torch.amp.GradScaler("cpu", enabled=False),
            grad_accum=1,
            grad_clip=None,
            group=Distributed(),
            device=torch.device("cpu"),
        )
    assert caught.value.task == "toy"
