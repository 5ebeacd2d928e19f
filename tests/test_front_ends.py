"""Every front-end runs the same path from input to result: ``imgzoo.run``, ``imgzoo run``,
``imgzoo serve`` and full-resolution evaluation (``imgzoo eval --full-resolution`` and
``evaluate(mode="pipeline")``) give the same pixels, the same metrics and the same warnings, for
a task with a named input and for one that changes the size."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import plugins
from imgzoo.cli import main
from imgzoo.images import load_image, save_image
from imgzoo.serve import ServeSettings, create_app
from imgzoo.serve.app import WARNING_HEADER
from imgzoo.weights import save_weights, state_tensors
from serving import decode_png, local_client

pytestmark = pytest.mark.usefixtures("contract_tasks")

SIZE = (24, 32)  # height, width of the input pictures


def seeded_weights(task: str, path: Path) -> Path:
    """A seeded init of ``task``'s models saved as weights, so that every front-end loads the
    same model."""
    torch.manual_seed(0)
    task_object = plugins.get_task_class(task)()
    tensors = {}
    for role, model in task_object.build_models().items():
        tensors.update(state_tensors(model, prefix=role))
    metadata = {"task": task, "config": task_object.config.model_dump(mode="json")}
    save_weights(path, tensors, metadata=metadata)
    return path


def paired_folder(root: Path, task: str, rng: np.random.Generator, *, empty_mask: bool = False) -> Path:
    """``root/A/x.png`` inputs, ``root/B/x.png`` truths (``scale`` times larger) and, for a task
    with a mask, ``root/mask/x.png``: what ``paired:root`` reads, and what the other front-ends
    are given file by file."""
    scale = plugins.get_task_class(task).scale
    height, width = SIZE
    truth = rng.integers(0, 256, (height * scale, width * scale, 3), dtype=np.uint8)
    picture = truth[::scale, ::scale].copy()
    save_image(root / "A" / "x.png", picture.astype(np.float32) / 255)
    save_image(root / "B" / "x.png", truth.astype(np.float32) / 255)
    if any(spec.name == "mask" for spec in plugins.get_task_class(task).extra_inputs):
        holes = np.zeros((height, width, 1), np.float32)
        if not empty_mask:
            holes[4:12, 6:20] = 1.0
        save_image(root / "mask" / "x.png", holes)
    return root


@pytest.fixture(params=["toy-inpaint", "toy-upscale"])
def task(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def through_run(task: str, data: Path, weights: Path) -> tuple[np.ndarray, list[str]]:
    inputs = {"mask": data / "mask" / "x.png"} if (data / "mask").is_dir() else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = imgzoo.run(task, data / "A" / "x.png", weights=weights, precision="fp32", **inputs)
    return result, [str(warning.message) for warning in caught]


def through_cli(
    task: str, data: Path, weights: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[np.ndarray, str]:
    named = ["--input", f"mask={data / 'mask' / 'x.png'}"] if (data / "mask").is_dir() else []
    picture, chosen = str(data / "A" / "x.png"), ["--weights", str(weights), "--precision", "fp32"]
    assert main(["run", task, picture, *named, *chosen, "-o", str(out)]) == 0
    return load_image(out).stored, capsys.readouterr().err


def through_server(task: str, data: Path, weights: Path) -> tuple[np.ndarray, list[str]]:
    settings = ServeSettings(precision="fp32", weights={task: str(weights)})
    files = {"image": ("x.png", (data / "A" / "x.png").read_bytes(), "image/png")}
    if (data / "mask").is_dir():
        files["mask"] = ("mask.png", (data / "mask" / "x.png").read_bytes(), "image/png")
    with local_client(create_app([task], settings)) as client:
        response = client.post(f"/v1/tasks/{task}", files=files)
    assert response.status_code == 200, response.text
    return decode_png(response.content), response.headers.get_list(WARNING_HEADER)


def test_every_front_end_gives_the_same_pixels_and_metrics(
    task: str, tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = seeded_weights(task, tmp_path / "weights.safetensors")
    data = paired_folder(tmp_path / "data", task, rng)
    ran, _ = through_run(task, data, weights)
    commanded, _ = through_cli(task, data, weights, tmp_path / "out.png", capsys)
    served, _ = through_server(task, data, weights)
    scale = plugins.get_task_class(task).scale
    assert ran.shape == (SIZE[0] * scale, SIZE[1] * scale, 3) and ran.dtype == np.uint8
    np.testing.assert_array_equal(commanded, ran)
    np.testing.assert_array_equal(served, ran)

    # Full-resolution evaluation measures the same result (before it is rounded to 8 bits).
    evaluation = imgzoo.evaluate(task, f"paired:{data}", weights=str(weights), mode="pipeline")
    measured = ["--data", f"paired:{data}", "--weights", str(weights), "--full-resolution", "--json"]
    assert main(["eval", task, *measured]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["metrics"] == pytest.approx(dict(evaluation), abs=1e-9)
    truth = load_image(data / "B" / "x.png").pixels
    psnr = imgzoo.metrics.psnr(_tensor(ran.astype(np.float32) / 255), _tensor(truth))
    assert evaluation["psnr"] == pytest.approx(float(psnr), abs=0.05)  # 8-bit rounding, at most


def test_evaluation_passes_a_samples_named_inputs(tmp_path: Path, rng: np.random.Generator) -> None:
    weights = seeded_weights("toy-inpaint", tmp_path / "weights.safetensors")
    data = paired_folder(tmp_path / "data", "toy-inpaint", rng)
    given = imgzoo.evaluate("toy-inpaint", f"paired:{data}", weights=str(weights), mode="pipeline")
    # The masked pixels are filled in: only with the mask does the result differ from the input.
    (data / "mask" / "x.png").unlink()
    save_image(data / "mask" / "x.png", np.zeros((*SIZE, 1), np.float32))
    unmasked = imgzoo.evaluate("toy-inpaint", f"paired:{data}", weights=str(weights), mode="pipeline")
    assert given["psnr"] != pytest.approx(unmasked["psnr"], abs=1e-3)


def test_a_tasks_warning_reaches_every_front_end(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = seeded_weights("toy-inpaint", tmp_path / "weights.safetensors")
    data = paired_folder(tmp_path / "data", "toy-inpaint", rng, empty_mask=True)
    expected = "toy-inpaint: the mask is empty, so nothing is filled in"
    _, python_warnings = through_run("toy-inpaint", data, weights)
    assert python_warnings == [expected]
    _, stderr = through_cli("toy-inpaint", data, weights, tmp_path / "out.png", capsys)
    assert f"imgzoo: warning: {expected}" in stderr
    _, headers = through_server("toy-inpaint", data, weights)
    assert headers == [expected]


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels[..., :3], dtype=np.float32)).permute(2, 0, 1)[None]
