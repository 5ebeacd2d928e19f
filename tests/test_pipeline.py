"""imgzoo.run / imgzoo.load end to end, on the test-only ``invert`` task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import api, model_cache, pipeline
from imgzoo import images as _images
from imgzoo.files import temporary_sibling
from toy_tasks import InvertTask, write_invert_weights, write_registry

pytestmark = pytest.mark.usefixtures("toy_tasks")


@pytest.fixture
def invert_weights(tmp_path: Path) -> Path:
    """Register exact weights as invert's default, through a user registry file."""
    weights = tmp_path / "invert-exact.safetensors"
    sha256 = write_invert_weights(weights)
    registry_file = tmp_path / "registry.toml"
    write_registry(registry_file, "invert", {"exact": (weights.name, sha256)}, default="exact")
    imgzoo.add_registry(registry_file)
    return weights


def test_run_returns_the_same_type_and_size(invert_weights: Path, rng: np.random.Generator) -> None:
    array = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    result = imgzoo.run("invert", array)
    assert isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.shape == array.shape
    assert np.abs(result.astype(int) - (255 - array.astype(int))).max() <= 1

    tensor = torch.rand(3, 20, 30)
    out = imgzoo.run("invert", tensor, precision="fp32")  # float in, float out: to fp32's last digits
    assert isinstance(out, torch.Tensor) and out.shape == tensor.shape
    torch.testing.assert_close(out, 1 - tensor, atol=1e-5, rtol=0)


def test_run_accepts_paths_bytes_and_lists(invert_weights: Path, tmp_path: Path) -> None:
    bgr = np.zeros((8, 12, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    path = tmp_path / "red.png"
    assert cv2.imwrite(str(path), bgr)
    from_path = imgzoo.run("invert", path)
    assert from_path.shape == (8, 12, 3) and from_path.dtype == np.uint8
    assert tuple(from_path[0, 0]) == (0, 255, 255)  # RGB order: red inverted is cyan
    np.testing.assert_array_equal(imgzoo.run("invert", path.read_bytes()), from_path)
    results = imgzoo.run("invert", [str(path), np.full((5, 7), 0.25, np.float32)])
    assert isinstance(results, list) and results[0].shape == (8, 12, 3) and results[1].shape[:2] == (5, 7)


def test_run_writes_output_file(invert_weights: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "neg.png"
    target.parent.mkdir()
    imgzoo.run("invert", np.zeros((4, 4, 3), np.uint8), output=target)
    written = cv2.imread(str(target))
    assert written is not None and written.shape == (4, 4, 3) and written.min() == 255


def test_load_gives_a_reusable_pipeline(invert_weights: Path) -> None:
    pipe = imgzoo.load("invert")
    assert pipe.task.name == "invert" and isinstance(pipe.task, InvertTask)
    assert isinstance(pipe.model, torch.nn.Module) and not pipe.model.training
    assert pipe.weights is not None and pipe.weights.name == "exact"
    assert pipe.weights.path == invert_weights
    assert pipe.config.gain == 1.0
    assert "invert" in repr(pipe)


def test_config_layers_weights_then_kwargs(tmp_path: Path) -> None:
    weights = tmp_path / "gain2.safetensors"
    write_invert_weights(weights, gain=2.0)
    assert imgzoo.load("invert", weights).config.gain == 2.0  # from the weights' metadata
    assert imgzoo.load("invert", weights, gain=3.0).config.gain == 3.0  # keyword wins
    config_file = tmp_path / "config.toml"
    config_file.write_text("gain = 4.0\n")
    assert imgzoo.load("invert", weights, config_file=config_file).config.gain == 4.0


def test_run_caches_pipelines(invert_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    original = InvertTask.build_models
    monkeypatch.setattr(InvertTask, "build_models", lambda self: builds.append(1) or original(self))
    image = np.zeros((4, 4, 3), np.float32)
    imgzoo.run("invert", image)
    imgzoo.run("invert", image)
    assert len(builds) == 1
    imgzoo.run("invert", image, gain=2.0)  # different options: a different pipeline
    assert len(builds) == 2


def test_run_is_thread_safe_and_loads_once(invert_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    original = InvertTask.build_models
    monkeypatch.setattr(InvertTask, "build_models", lambda self: builds.append(1) or original(self))
    images = [np.full((6, 6, 3), i / 10, np.float32) for i in range(8)]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = imgzoo.run("invert", images[i], precision="fp32")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    for i in range(8):
        np.testing.assert_allclose(results[i], 1 - images[i], atol=1e-5)


def test_a_list_is_batched(invert_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_sizes = []
    original = InvertTask.forward
    # The first run measures the model's memory per pixel with a forward pass of its own.
    imgzoo.run("invert", np.zeros((8, 8, 3), np.float32))
    monkeypatch.setattr(
        InvertTask,
        "forward",
        lambda self, models, x: batch_sizes.append(x.shape[0]) or original(self, models, x),
    )
    same = [np.zeros((8, 8, 3), np.float32)] * 5
    imgzoo.run("invert", [*same, np.zeros((9, 9, 3), np.float32)])
    assert sorted(batch_sizes) == [1, 5]


def test_without_weights_runs_untrained_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="untrained"):
        pipe = imgzoo.load("invert")
    assert pipe.weights is None


def test_unknown_task_suggests_close_names() -> None:
    with pytest.raises(imgzoo.UnknownTaskError, match="did you mean 'invert'"):
        imgzoo.run("invertt", np.zeros((2, 2, 3), np.uint8))


def test_unknown_weights_name(invert_weights: Path) -> None:
    with pytest.raises(imgzoo.WeightsError, match=r"no weights named 'nope'.*exact"):
        imgzoo.load("invert", "nope")


def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    write_invert_weights(weights)
    registry_file = tmp_path / "registry.toml"
    write_registry(registry_file, "invert", {"bad": (weights.name, "0" * 64)}, default="bad")
    imgzoo.add_registry(registry_file)
    with pytest.raises(imgzoo.WeightsError, match=r"w\.safetensors"):
        imgzoo.run("invert", np.zeros((2, 2, 3), np.uint8))


def test_a_damaged_file_loaded_by_path_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    write_invert_weights(weights)
    imgzoo.load("invert", weights)
    damaged = bytearray(weights.read_bytes())
    damaged[-5] ^= 1  # a byte of the last tensor
    weights.write_bytes(damaged)
    api.clear_cache()
    with pytest.raises(imgzoo.WeightsError, match=rf"{re.escape(str(weights))} is damaged") as caught:
        imgzoo.load("invert", weights)
    assert caught.value.path == weights


def test_weights_of_another_task_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    write_invert_weights(weights)
    with pytest.raises(imgzoo.WeightsError, match="for task 'invert', not 'toygan'"):
        imgzoo.load("toygan", weights)


def test_bad_config_value_names_task_and_field() -> None:
    with pytest.raises(imgzoo.ConfigError) as caught:
        imgzoo.load("invert", False, gain=-1, colour="red")
    message = str(caught.value)
    assert "invert" in message and "gain" in message and "colour" in message
    assert {field for field, _ in caught.value.errors} == {"gain", "colour"}


def test_bad_image_gives_invalid_image_error(invert_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(imgzoo.InvalidImageError, match=r"missing\.png"):
        imgzoo.run("invert", tmp_path / "missing.png")


def test_a_multi_model_task_runs_the_model_it_names_for_inference() -> None:
    pipe = imgzoo.load("toygan", False)
    assert set(pipe.models) == {"generator", "critic"} and pipe.model is pipe.models["generator"]
    assert pipe(np.zeros((5, 5, 3), np.float32)).shape == (5, 5, 3)


def test_cache_can_be_cleared(invert_weights: Path) -> None:
    imgzoo.run("invert", np.zeros((2, 2, 3), np.uint8))
    assert model_cache._cache
    api.clear_cache()
    assert not model_cache._cache


def test_the_pipeline_cache_is_bounded(invert_weights: Path) -> None:
    for gain in range(1, model_cache.DEFAULT_CAPACITY + 3):
        imgzoo.run("invert", np.zeros((2, 2, 3), np.uint8), gain=float(gain))
    assert len(model_cache._cache) == model_cache.DEFAULT_CAPACITY


def test_batch_size_must_be_positive(invert_weights: Path) -> None:
    with pytest.raises(imgzoo.ArgumentError, match="batch_size must be at least 1") as caught:
        imgzoo.run("invert", np.zeros((2, 2, 3), np.uint8), batch_size=0)
    assert caught.value.argument == "batch_size" and isinstance(caught.value, ValueError)


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if imgzoo.run gets as far as loading a model."""

    def load(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(pipeline, "load", load)


@pytest.mark.parametrize("overwrite", [False, True])
def test_run_never_replaces_its_input(no_model_loads: None, tmp_path: Path, overwrite: bool) -> None:
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((3, 3, 3), np.uint8))
    before = photo.read_bytes()
    for output in (photo, tmp_path, tmp_path / "." / "photo.png"):
        with pytest.raises(imgzoo.OutputError, match="would replace its input"):
            imgzoo.run("invert", str(photo), output=output, overwrite=overwrite)
    assert photo.read_bytes() == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_that_appears_after_the_check_is_replaced_only_when_asked(
    invert_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    # Before, the up-front check passed and the write replaced the newcomer without overwrite.
    photo, target = tmp_path / "photo.jpg", tmp_path / "out.png"
    cv2.imwrite(str(photo), np.zeros((3, 3, 3), np.uint8))
    encode = _images.encode_pixels

    def encode_while_someone_writes(*args: object, **kwargs: object) -> bytes:
        target.write_bytes(b"someone else's file")
        return encode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_images, "encode_pixels", encode_while_someone_writes)
    if overwrite:
        imgzoo.run("invert", photo, output=target, overwrite=True)
        assert cv2.imread(str(target)).shape == (3, 3, 3)
    else:
        with pytest.raises(imgzoo.OutputExistsError, match=r"out\.png appeared while the result was being"):
            imgzoo.run("invert", photo, output=target)
        assert target.read_bytes() == b"someone else's file"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []


def test_a_run_removes_the_temporary_files_that_killed_runs_left(
    invert_weights: Path, tmp_path: Path
) -> None:
    photo, target = tmp_path / "photo.jpg", tmp_path / "out" / "photo.png"
    cv2.imwrite(str(photo), np.zeros((3, 3, 3), np.uint8))
    target.parent.mkdir()
    # One written by a process that is gone, one by a process that still runs (this one).
    left_by_the_dead = subprocess.run(
        [sys.executable, "-c", WRITE_A_TEMPORARY_FILE, str(target)],
        env={**os.environ, "PYTHONPATH": str(Path(imgzoo.__file__).parents[1])},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    being_written = temporary_sibling(target)
    being_written.write_bytes(b"half")
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        [Path(left_by_the_dead).name, being_written.name]
    )
    imgzoo.run("invert", photo, output=target.parent)
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(["photo.png", being_written.name])


WRITE_A_TEMPORARY_FILE = """
import sys
from pathlib import Path
from imgzoo.files import temporary_sibling
left = temporary_sibling(Path(sys.argv[1]))
left.write_bytes(b"half a picture")
print(left)
"""


@pytest.mark.parametrize("output", ["x" * 300 + ".png", "x" * 300 + "/"], ids=["file", "folder"])
def test_an_output_name_too_long_is_one_clear_error(
    no_model_loads: None, tmp_path: Path, output: str
) -> None:
    # Before, the OSError of the first check on the path came through.
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(imgzoo.OutputError, match=r"cannot write to .*x{300}.*: File name too long"):
        imgzoo.run("invert", str(photo), output=tmp_path / output)


def test_run_replaces_an_existing_file_only_when_asked(invert_weights: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), np.zeros((3, 3, 3), np.uint8))
    unrelated = tmp_path / "photo.png"
    unrelated.write_bytes(b"someone else's file")
    with pytest.raises(imgzoo.OutputExistsError, match="pass overwrite=True to replace") as caught:
        imgzoo.run("invert", photo, output=tmp_path)
    # Also the builtin a caller may already catch, and it names the file.
    assert isinstance(caught.value, FileExistsError) and caught.value.path == unrelated
    assert unrelated.read_bytes() == b"someone else's file"
    imgzoo.run("invert", photo, output=tmp_path, overwrite=True)
    assert cv2.imread(str(unrelated)).min() == 255


def test_run_refuses_outputs_that_cannot_all_be_written(no_model_loads: None, tmp_path: Path) -> None:
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.png"), np.zeros((3, 3, 3), np.uint8))
    pair = [tmp_path / "d1" / "x.png", tmp_path / "d2" / "x.png"]
    with pytest.raises(imgzoo.ZooError, match="would both be written to"):
        imgzoo.run("invert", pair, output=tmp_path / "out")
    with pytest.raises(imgzoo.ZooError, match="names one file, but there are 2 inputs"):
        imgzoo.run("invert", [np.zeros((2, 2, 3), np.uint8)] * 2, output=tmp_path / "two.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d1", "d2"]


def test_a_path_with_a_nul_byte_is_an_invalid_image(invert_weights: Path) -> None:
    with pytest.raises(imgzoo.InvalidImageError, match="NUL byte"):
        imgzoo.run("invert", "a\x00b")


def test_running_out_of_memory_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = imgzoo.load("invert", False)
    pipe.bytes_per_pixel  # noqa: B018 (measured before the forward pass runs out)

    def forward(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(pipe.task, "forward", forward)
    with pytest.raises(imgzoo.InvalidImageError, match=r"array \(5x4\) needs more memory than there is"):
        pipe(np.zeros((4, 5, 3), np.uint8))
