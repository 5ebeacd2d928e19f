"""Tests of ``denoise``: imgzoo's task contract, the noise models, and the shipped weights."""

from __future__ import annotations

import imgzoo
import numpy as np
import pytest
import torch
from imgzoo import Sample
from imgzoo.testing import TaskContract, synthetic_image

from imgzoo_denoise.noise import add_noise, jpeg_quality
from imgzoo_denoise.task import DenoiseConfig, DenoiseTask


class TestDenoiseContract(TaskContract):
    """Every check of the contract, one test each (see imgzoo.testing)."""

    task = "denoise"


def test_gaussian_noise_has_the_configured_deviation() -> None:
    flat = np.full((200, 200, 3), 0.5, np.float32)
    noisy = add_noise(flat, "gaussian", 0.1, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == flat.shape
    assert float(np.std(noisy - flat)) == pytest.approx(0.1, rel=0.05)


def test_salt_and_pepper_turns_whole_pixels_black_or_white() -> None:
    flat = np.full((200, 200, 3), 0.5, np.float32)
    noisy = add_noise(flat, "salt_pepper", 0.2, np.random.default_rng(0))
    hit = (noisy != 0.5).any(axis=2)
    assert hit.mean() == pytest.approx(0.2, abs=0.01)
    assert set(np.unique(noisy[hit])) == {0.0, 1.0}
    assert (noisy[hit] == noisy[hit][:, :1]).all()  # the same value in every channel


def test_jpeg_noise_is_a_compression_round_trip() -> None:
    assert (jpeg_quality(0.9), jpeg_quality(0.0), jpeg_quality(0.999)) == (10, 100, 1)
    image = synthetic_image(40, 48)
    for picture in (image, synthetic_image(40, 48, channels=1)):
        noisy = add_noise(picture, "jpeg", 0.9, np.random.default_rng(0))
        assert noisy.shape == picture.shape and 0.001 < float(np.abs(noisy - picture).mean()) < 0.2
    with pytest.raises(ValueError, match="gaussian, salt_pepper, jpeg"):
        add_noise(image, "speckle", 0.1, np.random.default_rng(0))


def test_training_noise_comes_from_the_samples_generator() -> None:
    task = DenoiseTask(DenoiseConfig(noise="gaussian", strength=0.2))
    image = synthetic_image(24, 24)
    noisy, _ = task.make_pair(Sample(image=image, rng=np.random.default_rng(5)))
    again, _ = task.make_pair(Sample(image=image.copy(), rng=np.random.default_rng(5)))
    assert torch.equal(noisy, again)
    other, _ = task.make_pair(Sample(image=image, rng=np.random.default_rng(6)))
    assert not torch.equal(noisy, other)


def test_the_input_made_from_a_clean_picture_is_the_training_input() -> None:
    task = DenoiseTask(DenoiseConfig(noise="gaussian", strength=0.2))
    image = synthetic_image(24, 24)
    noisy = task.degrade(image, np.random.default_rng(3))
    assert noisy.shape == image.shape and 0.05 < float(np.abs(noisy - image).mean()) < 0.3
    inputs, _ = task.make_pair(Sample(image=image, rng=np.random.default_rng(3)))
    assert torch.equal(inputs, torch.from_numpy(noisy).permute(2, 0, 1))


def test_pipeline_evaluation_scores_the_noisy_input_too() -> None:
    class Pictures:
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> Sample:
            return Sample(image=synthetic_image(20 + 4 * index, 24, seed=index), name=str(index))

    # A fresh model is the identity: its result is the noisy input, so the gain is 0.
    evaluation = imgzoo.evaluate("denoise", Pictures(), weights=False, device="cpu", mode="pipeline")
    assert evaluation["psnr"] == pytest.approx(evaluation["psnr_noisy"], abs=1e-3)
    assert abs(evaluation["psnr_gain"]) < 1e-3 and 5 < evaluation["psnr_noisy"] < 40


def test_paired_samples_are_used_as_they_are() -> None:
    noisy, clean = synthetic_image(16, 16, seed=1), synthetic_image(16, 16, seed=2)
    inputs, targets = DenoiseTask().make_pair(Sample(image=noisy, target=clean))
    assert torch.equal(inputs, torch.from_numpy(noisy).permute(2, 0, 1))
    assert torch.equal(targets, torch.from_numpy(clean).permute(2, 0, 1))


def test_a_fresh_model_is_the_identity() -> None:
    pipeline = imgzoo.load("denoise", weights=False, device="cpu")
    image = synthetic_image(17, 30)
    assert np.allclose(pipeline(image), image, atol=1e-6)


def test_gray_in_gray_out() -> None:
    gray = (synthetic_image(21, 9, channels=1)[..., 0] * 255).astype(np.uint8)
    assert imgzoo.run("denoise", gray, device="cpu").shape == (21, 9)


def test_the_shipped_weights_are_the_default_and_remove_most_of_the_noise() -> None:
    info = imgzoo.task_info("denoise")
    assert info.default_weights == "minifigs-v1"
    metrics = imgzoo.evaluate("denoise", "minifigs:n=16,seed=7", device="cpu")
    assert metrics["psnr_noisy"] == pytest.approx(20.2, abs=0.3)  # the noise of the recipe
    assert metrics["psnr_gain"] > 8


def test_large_images_run_in_tiles_that_give_the_untiled_result() -> None:
    rng = np.random.default_rng(0)
    clean = synthetic_image(200, 150)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    tiled, whole = imgzoo.load("denoise", tile=80), imgzoo.load("denoise", tile=0)
    assert tiled.tiling is not None and tiled.tiling.splits(200, 150)
    difference = np.abs(tiled(noisy) - whole(noisy))
    assert difference.max() < 1e-5  # the tiles' halo covers the network's reach: no seams at all
