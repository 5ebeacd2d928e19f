"""Inference precision: ``"auto"`` picks bf16 where the hardware computes it natively, and bf16
moves no built-in task's output far from fp32."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import catalogue, hardware
from imgzoo.images import load_image, to_uint8
from imgzoo.runtime import auto_precision

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_IMAGES = sorted((EXAMPLES / "minifigs").glob("*.png")) + sorted((EXAMPLES / "photos").glob("*.jpg"))


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in /proc/cpuinfo the test writes; the cached answer is dropped before and after."""
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(hardware, "_CPUINFO", path)
    hardware.cpu_bf16_feature.cache_clear()
    yield path
    hardware.cpu_bf16_feature.cache_clear()


def test_auto_is_bf16_on_a_cpu_with_avx512_bf16(cpuinfo: Path) -> None:
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512bw\n\n")
    assert auto_precision(torch.device("cpu")) == ("bf16", "auto: this CPU has AVX512-BF16")
    pipeline = imgzoo.load("edges2photo", weights=False, ngf=8, image_size=32)
    assert pipeline.precision == "bf16"
    assert "precision='bf16' (auto: this CPU has AVX512-BF16)" in repr(pipeline)


def test_auto_is_fp32_without_native_bf16(cpuinfo: Path) -> None:
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n\n")
    pipeline = imgzoo.load("edges2photo", weights=False, ngf=8, image_size=32)
    assert pipeline.precision == "fp32"
    assert "precision='fp32' (auto: this CPU has no native bf16" in repr(pipeline)


def test_auto_is_fp32_where_cpu_features_cannot_be_read(cpuinfo: Path) -> None:
    assert not cpuinfo.exists()
    assert auto_precision(torch.device("cpu"))[0] == "fp32"


def test_an_explicit_precision_is_kept_and_not_explained() -> None:
    pipeline = imgzoo.load("edges2photo", weights=False, ngf=8, image_size=32, precision="fp32")
    assert pipeline.precision == "fp32" and pipeline.precision_reason is None
    assert repr(pipeline).endswith("precision='fp32')")


def test_an_unknown_precision_names_the_choices() -> None:
    with pytest.raises(imgzoo.DeviceError, match="use one of auto, fp32, bf16, fp16") as caught:
        imgzoo.load("edges2photo", weights=False, precision="int8")
    assert caught.value.precision == "int8"


def test_info_tells_what_auto_runs_without_importing_torch() -> None:
    code = (
        "import sys; from imgzoo.cli import main; main(['info', 'colorize']); print('torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    feature = hardware.cpu_bf16_feature()
    expected = f"bf16 (this CPU has {feature})" if feature else "fp32 (this CPU has no native bf16)"
    assert f"precision: auto runs {expected} on the CPU" in shown
    assert shown.splitlines()[-1] == "False"


# How far bf16 may move a task's 8-bit outputs from fp32's: (mean, share of values beyond 8
# levels, largest). A generator of pictures from lines amplifies rounding where it decides an
# edge: edges2photo's shipped weights move 0.4-1.0 levels on average on the examples' edge maps,
# 9 at most on a handful of pixels (earlier weights: up to 1.1 and 13); colorize, whose network
# only predicts chroma, moves less.
BF16_BOUNDS = {"colorize": (0.5, 1e-3, 16), "edges2photo": (1.5, 1e-2, 24)}


@pytest.mark.parametrize("task", catalogue.list_tasks())
def test_bf16_moves_outputs_little_from_fp32(task: str) -> None:
    """On the bundled examples, given as a user would give them (``Task.degrade``: gray for
    colorize, the edge map for edges2photo), with the default weights, in 8-bit levels: within
    the task's bounds above. Where the CPU has no native bf16, torch emulates it: slower, same
    numbers."""
    mean_bound, far_bound, max_bound = BF16_BOUNDS[task]
    outputs = {}
    for precision in ("fp32", "bf16"):
        pipeline = imgzoo.load(task, precision=precision)
        inputs = [
            pipeline.task.degrade(load_image(path).rgb(), np.random.default_rng(0)) for path in EXAMPLE_IMAGES
        ]
        outputs[precision] = [to_uint8(pipeline(image)) for image in inputs]
    moved_at_all = False
    for path, full, half in zip(EXAMPLE_IMAGES, outputs["fp32"], outputs["bf16"], strict=True):
        moved = np.abs(full.astype(np.int16) - half.astype(np.int16))
        far = np.count_nonzero(moved > 8) / moved.size
        assert moved.mean() <= mean_bound and far <= far_bound and moved.max() <= max_bound, (
            path.name,
            moved.mean(),
            far,
            moved.max(),
        )
        moved_at_all = moved_at_all or moved.max() > 0
    assert moved_at_all, "bf16 gave fp32's outputs exactly: the bf16 path did not run"


def test_inference_and_training_default_to_auto() -> None:
    import inspect

    from imgzoo.cli import _build_parser
    from imgzoo.training.config import TrainConfig

    assert _build_parser().parse_args(["run", "colorize", "x.png"]).precision == "auto"
    assert inspect.signature(imgzoo.load).parameters["precision"].default == "auto"
    assert inspect.signature(imgzoo.run).parameters["precision"].default == "auto"
    assert TrainConfig().precision == "auto"
