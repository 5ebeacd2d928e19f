"""The generic trainer on data whose pictures differ in size: a test-only 2x upscaling task
trained on paired folders (``A/`` small, ``B/`` twice as large, a ``mask/`` named input) and on
a plain folder, from native-resolution crops."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import imgzoo
from imgzoo import DataError
from imgzoo.data import Sample
from imgzoo.images import save_image
from imgzoo.model import Model
from imgzoo.training.batches import pair_transforms
from toy_tasks import InvertConfig, PixelNet, PixelNetConfig, declare, to_tensor

QUICK: dict[str, Any] = {"batch_size": 2, "device": "cpu", "num_workers": 0, "progress": False}


class UpscaleTask(imgzoo.Task):
    """2x enlargement learned from native-resolution crops; a ``mask`` input, when the data has
    one, blanks the pixels it marks (as an inpainting task would)."""

    name = "upscale2-test"
    description = "2x enlargement (test task)"
    Config = InvertConfig
    scale = 2
    extra_inputs = (imgzoo.InputSpec("mask", "1 where the picture is blanked", channels=1, required=False),)
    # The (input, target) sizes and named inputs make_pair received, for the tests to inspect.
    seen: ClassVar[list[tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]]] = []

    def build_models(self) -> dict[str, Model]:
        return {"model": PixelNet(PixelNetConfig())}

    def preprocess(self, image: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
        return to_tensor(image if mask is None else image * (1 - mask))[None]

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return models["model"](F.interpolate(inputs, scale_factor=self.scale, mode="nearest"))

    def postprocess(
        self, output: torch.Tensor, image: np.ndarray, mask: np.ndarray | None = None
    ) -> np.ndarray:
        return output.clamp(0, 1).permute(1, 2, 0).numpy()

    def augmentations(self) -> dict[str, Any]:
        return {"random_crop": True, "flip": True, "crop": "native"}

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        if sample.target is None:  # a single picture: the input is its crop, shrunk
            target = sample.image
            height, width = target.shape[0] // self.scale, target.shape[1] // self.scale
            image = cv2.resize(target, (width, height), interpolation=cv2.INTER_AREA)
        else:
            image, target = sample.image, sample.target
        if "mask" in sample.inputs:
            image = image * (1 - sample.inputs["mask"])
        UpscaleTask.seen.append((image.shape, target.shape, tuple(sorted(sample.inputs))))
        return to_tensor(image), to_tensor(target)


class UpscalePlugin:
    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(declare(UpscaleTask))


@pytest.fixture(autouse=True)
def upscale_task() -> Iterator[None]:
    name = imgzoo.register_plugin(UpscalePlugin(), name="upscale-test")
    UpscaleTask.seen.clear()
    yield
    imgzoo.unregister_plugin(name)


def write_pairs(root: Path, *, count: int = 6, small: int = 12, large: int = 24) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        target = rng.random((large, large, 3)).astype(np.float32)
        save_image(root / "B" / f"{index}.png", target)
        save_image(
            root / "A" / f"{index}.png", cv2.resize(target, (small, small), interpolation=cv2.INTER_AREA)
        )
        mask = (rng.random((small, small, 1)) < 0.2).astype(np.float32)
        save_image(root / "mask" / f"{index}.png", mask)
    return root


def test_trains_on_paired_folders_at_the_task_scale_with_a_named_input(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs")
    # Folders the task does not name are left alone, however few of the pairs they hold.
    for stray in ("__MACOSX", "thumbs"):
        save_image(data / stray / "0.png", np.zeros((3, 3, 3), np.float32))
    result = imgzoo.train(
        "upscale2-test",
        f"paired:{data}",
        out=tmp_path / "run",
        steps=2,
        image_size=16,
        **QUICK,
    )
    assert np.isfinite(result.metrics["psnr"])
    # Training crops and the centre-cropped validation: input 8x8, target 16x16, mask carried.
    assert UpscaleTask.seen and set(UpscaleTask.seen) == {((8, 8, 3), (16, 16, 3), ("mask",))}


def test_trains_on_single_pictures_from_full_resolution_crops(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for index in range(6):
        save_image(tmp_path / "photos" / f"{index}.png", rng.random((40, 48, 3)).astype(np.float32))
    result = imgzoo.train(
        "upscale2-test",
        str(tmp_path / "photos"),
        out=tmp_path / "run",
        steps=2,
        image_size=16,
        **QUICK,
    )
    assert np.isfinite(result.metrics["psnr"])
    assert set(UpscaleTask.seen) == {((8, 8, 3), (16, 16, 3), ())}


def test_paired_folders_that_disagree_with_the_task_scale_fail_before_training(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs", large=36)
    with pytest.raises(
        DataError, match=r"0\.png is 12x12 but its partner .* is 36x36: B/ images must be 2 times"
    ):
        imgzoo.train("upscale2-test", f"paired:{data}", out=tmp_path / "run", steps=1, **QUICK)
    assert not (tmp_path / "run").exists()
    assert UpscaleTask.seen == []


def test_pair_transforms_follow_the_task_scale_and_crop_policy() -> None:
    train, evaluation = pair_transforms(UpscaleTask(InvertConfig(image_size=16)))
    assert (train.size, train.scale, train.crop, train.random_crop, train.flip) == (
        16,
        2,
        "native",
        True,
        True,
    )
    assert (evaluation.size, evaluation.scale, evaluation.crop) == (16, 2, "native")
    assert not (evaluation.random_crop or evaluation.flip or evaluation.affine)
