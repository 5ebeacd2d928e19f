"""The standalone export: the whole of ``run()`` in one ONNX graph that plain onnxruntime runs,
checked against ``run(precision="fp32")``; and a clear refusal where a task's processing cannot
be put in a graph."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import images, plugins
from imgzoo.cli import main
from imgzoo.exporting import (
    STANDALONE_MAX_LEVELS,
    STANDALONE_MEAN_LEVELS,
    STANDALONE_SIZES,
    export,
    exported_metadata,
)

# What a user without imgzoo runs: numpy and onnxruntime only (the README's lines, reading .npy).
PLAIN_ONNXRUNTIME = """
import sys
import numpy as np
import onnxruntime

model, *pictures = sys.argv[1:]
session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
for path in pictures:
    picture = np.load(path)  # uint8 HxWxC, C = 1 or 3
    np.save(path.replace(".npy", ".result.npy"), session.run(None, {"image": picture})[0])
assert not any(name.split(".")[0] == "imgzoo" for name in sys.modules), "imgzoo was imported"
"""

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "photos" / "astronaut.jpg"


def small(task: str) -> dict[str, Any]:
    return dict(plugins.get_task_class(task).test_overrides)


def plain_onnxruntime(model: Path, pictures: list[np.ndarray], folder: Path) -> list[np.ndarray]:
    """The graph's results for ``pictures``, computed in a fresh Python that never imports imgzoo."""
    paths = []
    for number, picture in enumerate(pictures):
        paths.append(folder / f"picture-{number}.npy")
        np.save(paths[-1], picture)
    script = folder / "plain_onnxruntime.py"
    script.write_text(PLAIN_ONNXRUNTIME)
    done = subprocess.run(
        [sys.executable, str(script), str(model), *map(str, paths)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [np.load(str(path).replace(".npy", ".result.npy")) for path in paths]


def pictures_for(task: str, height: int, width: int) -> list[np.ndarray]:
    """The example photo at this size, uint8 RGB, and the 1-channel input the task's users give
    (the gray picture, the edge map) made of it by the task's ``degrade``."""
    photo = cv2.resize(images.load_image(PHOTO).pixels, (width, height), interpolation=cv2.INTER_AREA)
    one_channel = plugins.get_task_class(task)().degrade(photo, np.random.default_rng(0))[..., :1]
    return [images.to_uint8(photo), images.to_uint8(one_channel)]


def assert_like_run(pipeline: imgzoo.Pipeline, pictures: list[np.ndarray], results: list[np.ndarray]) -> None:
    """Each result is the pipeline's (what run() gives) within the export's bounds."""
    for picture, result in zip(pictures, results, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # edges2photo on a photo: "not an edge map"
            expected = pipeline(picture)
        assert result.dtype == np.uint8 and result.shape == (*picture.shape[:2], 3)
        assert expected.dtype == np.uint8 and expected.shape == result.shape
        difference = np.abs(result.astype(int) - expected.astype(int))
        assert difference.max() <= STANDALONE_MAX_LEVELS, (picture.shape, difference.max())
        assert difference.mean() <= STANDALONE_MEAN_LEVELS, (picture.shape, difference.mean())


@pytest.mark.slow  # colorize: its 80 MiB of lightness tables are made, written and read back
@pytest.mark.filterwarnings("ignore:task .* no weights")
@pytest.mark.parametrize("task", ["colorize", "edges2photo"])
def test_a_tiny_standalone_export_runs_in_plain_onnxruntime_as_run_does(task: str, tmp_path: Path) -> None:
    options = small(task)
    torch.manual_seed(0)  # the same untrained weights in the export and in the pipeline below
    report = export(task, False, output=tmp_path / f"{task}.onnx", standalone=True, **options)
    torch.manual_seed(0)
    pipeline = imgzoo.load(task, False, device="cpu", precision="fp32", **options)
    assert report.standalone and len(report.checks) == 2 * len(STANDALONE_SIZES)
    assert {check.shape for check in report.checks} == {
        (height, width, channels) for height, width in STANDALONE_SIZES for channels in (1, 3)
    }
    for check in report.checks:
        assert check.max_abs_difference <= STANDALONE_MAX_LEVELS
        assert check.mean_abs_difference is not None and check.mean_abs_difference <= STANDALONE_MEAN_LEVELS
    stored = exported_metadata(report.file)
    assert stored["imgzoo.task"] == task and stored["imgzoo.input"] == "image"
    # An odd size the check did not run, gray and colour, from a Python without imgzoo.
    pictures = pictures_for(task, 45, 67)
    results = plain_onnxruntime(report.file, pictures, tmp_path)
    assert_like_run(pipeline, pictures, results)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["colorize", "edges2photo"])
def test_the_shipped_weights_export_standalone_and_match_run(task: str, tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / f"{task}.onnx"
    assert main(["export", task, "--standalone", "-o", str(target)]) == 0
    printed = capsys.readouterr().out
    assert f"exported {task} to {target}" in printed and "within 2 levels of run()'s" in printed
    pictures = pictures_for(task, 33, 50)
    pipeline = imgzoo.load(task, device="cpu", precision="fp32")
    assert_like_run(pipeline, pictures, plain_onnxruntime(target, pictures, tmp_path))


@pytest.mark.usefixtures("toy_tasks")
def test_a_task_without_the_hook_says_its_processing_is_python(tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "invert.onnx"
    with pytest.raises(
        imgzoo.ExportError, match=r"^invert: standalone export needs the task's standalone_module"
    ):
        export("invert", False, output=target, standalone=True)
    assert main(["export", "invert", "--weights", "none", "--standalone", "-o", str(target)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("imgzoo: error: invert: standalone export needs") and "\n" not in error
    assert "its preprocess and postprocess are Python code" in error
    assert not target.exists()


def test_a_step_that_cannot_be_a_graph_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        imgzoo.ExportError, match=r"cannot draw a photo's edges \(extract_edges\): its Canny"
    ) as caught:
        export(
            "edges2photo",
            False,
            output=tmp_path / "e.onnx",
            standalone=True,
            extract_edges=True,
            **small("edges2photo"),
        )
    assert "\n" not in str(caught.value)
    with pytest.raises(imgzoo.ExportError, match="writes ONNX only"):
        export("colorize", False, format="torchscript", output=tmp_path / "c.pt", standalone=True)
