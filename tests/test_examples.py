"""The README's main command works: ``python examples/demo.py`` runs every built-in task with its
shipped weights on the bundled images and writes the results and one picture sheet per task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_demo_runs_the_shipped_weights_on_the_bundled_images(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    pictures = sorted((EXAMPLES / "minifigs").glob("*.png")) + sorted((EXAMPLES / "photos").glob("*.jpg"))
    for task in ("colorize", "edges2photo"):
        assert f"{task}: {len(pictures)} examples with weights 'minifigs-preview'" in completed.stdout
        for picture in pictures:
            given = cv2.imread(str(picture))
            made = cv2.imread(str(tmp_path / task / f"{picture.stem}.png"))
            assert made is not None, f"{task} wrote no result for {picture.name}"
            assert made.shape == given.shape
        sheet = cv2.imread(str(tmp_path / f"{task}.png"))
        assert sheet is not None and sheet.shape[0] > len(pictures) * 192


@pytest.mark.slow
def test_the_gpu_recipe_runs_on_a_cpu_in_smoke_mode(tmp_path: Path) -> None:
    """examples/train_on_gpu.py --smoke: a few steps of each stage, then the held-out judgement."""
    out = tmp_path / "recipe"
    command = [sys.executable, str(EXAMPLES / "train_on_gpu.py"), str(out), "--smoke"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    for task in ("colorize", "edges2photo"):
        assert (out / f"{task}.safetensors").is_file()
        assert report[task]["steps"] == 3 and set(report[task]["new"]) == set(report[task]["shipped"])
        assert isinstance(report[task]["new_is_better"], bool)
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "holds the runs of an earlier recipe" in again.stderr
