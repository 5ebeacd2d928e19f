"""The built-in ``colorize`` task: the paper's architecture, the Lab pipeline, edge inputs, training.

Untrained models throughout (``weights=False``) and small images: these tests check plumbing,
shapes and invariants, not colours.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import imgzoo
from imgzoo.data.base import Sample
from imgzoo.pipeline import Pipeline, prepare_requests
from imgzoo.prepacked import _ops_available, is_prepacked
from imgzoo.testing import ImmediateStepContext
from imgzoo.weights import save_weights, state_tensors
from imgzoo_colorize import color
from imgzoo_colorize.config import ColorizeConfig
from imgzoo_colorize.model import ColorizationAutoencoder, KerasSameConv2d
from imgzoo_colorize.task import ColorizeTask
from imgzoo_minifigs.dataset import MinifigsDataset

# The paper's Keras summary (section 3), channels-first and without the batch axis.
PAPER_SUMMARY = [
    ("conv2d", (64, 128, 128), 640),
    ("conv2d_1", (128, 128, 128), 73856),
    ("conv2d_2", (128, 64, 64), 147584),
    ("conv2d_3", (256, 64, 64), 295168),
    ("conv2d_4", (256, 32, 32), 590080),
    ("conv2d_5", (512, 32, 32), 1180160),
    ("conv2d_6", (512, 32, 32), 2359808),
    ("conv2d_7", (256, 32, 32), 1179904),
    ("conv2d_8", (128, 32, 32), 295040),
    ("up_sampling2d", (128, 64, 64), 0),
    ("conv2d_9", (64, 64, 64), 73792),
    ("up_sampling2d_1", (64, 128, 128), 0),
    ("conv2d_10", (32, 128, 128), 18464),
    ("conv2d_11", (16, 128, 128), 4624),
    ("conv2d_12", (2, 128, 128), 290),
    ("up_sampling2d_2", (2, 256, 256), 0),
]


@pytest.fixture(scope="module")
def pipe() -> Iterator[Pipeline]:
    """An untrained pipeline at a small working size, shared by the module (inference only)."""
    yield imgzoo.load("colorize", weights=False, image_size=64)


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful but smooth RGB float image (noise blurred and stretched to [0, 1])."""
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    blurred = blurred.reshape(height, width, 3)
    return (blurred - blurred.min()) / max(float(blurred.max() - blurred.min()), 1e-6)


def minifig_batch(task: ColorizeTask, count: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [task.make_pair(sample) for sample in MinifigsDataset(resolution=size, n=count)]
    return torch.stack([pair[0] for pair in pairs]), torch.stack([pair[1] for pair in pairs])


# ── the plugin ──────────────────────────────────────────────────────────────────────────────


def test_the_plugin_and_its_config_do_not_import_torch_but_the_task_module_does() -> None:
    """``imgzoo list`` imports the plugin and reads the config schema from the declaration; the
    task module imports torch and the model at the top, like model code."""
    code = (
        "import sys, imgzoo_colorize; imgzoo_colorize.COLORIZE.config.model_json_schema(); "
        "heavy = {'torch', 'cv2', 'imgzoo_colorize.model'}; print(sorted(heavy & set(sys.modules))); "
        "import imgzoo_colorize.task; print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[]", "['cv2', 'imgzoo_colorize.model', 'torch']"]


def test_config_fields_are_described_and_strict() -> None:
    schema = ColorizeConfig.model_json_schema()
    assert {"image_size", "learning_rate", "loss", "rebalance_mix", "rebalance_sigma"} <= set(
        schema["properties"]
    )
    for name, field in schema["properties"].items():
        assert field.get("description"), f"config field {name!r} has no description"
    with pytest.raises(imgzoo.ConfigError, match="image_size"):
        imgzoo.load("colorize", weights=False, image_size=60)  # not a multiple of 8
    with pytest.raises(imgzoo.ConfigError, match="colour"):
        imgzoo.load("colorize", weights=False, colour=True)
    with pytest.raises(imgzoo.ConfigError, match="loss"):
        imgzoo.load("colorize", weights=False, loss="l1")


# ── the architecture ────────────────────────────────────────────────────────────────────────


def test_parameter_count_and_layer_shapes_match_the_paper() -> None:
    model = ColorizationAutoencoder()
    assert model.num_parameters() == 6_219_410
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Upsample))]
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for m in layers]
    with torch.inference_mode():
        output = model(torch.zeros(1, 1, 256, 256))
    for hook in hooks:
        hook.remove()
    assert shapes == [shape for _, shape, _ in PAPER_SUMMARY]
    assert [sum(p.numel() for p in m.parameters()) for m in layers] == [count for *_, count in PAPER_SUMMARY]
    assert output.shape == (1, 2, 256, 256)
    assert [
        type(m).__name__ for m in model.layers if not isinstance(m, (KerasSameConv2d, torch.nn.Upsample))
    ] == ["ReLU"] * 12 + ["Tanh"]


def test_stride_two_pads_like_keras_same() -> None:
    """Keras 'same' with stride 2 on an even side pads only after: output (0, 0) sees rows/cols 0..2."""
    conv = KerasSameConv2d(1, 1, stride=2)
    assert conv.bias is not None
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        out = conv(x)
        expected = (x[0, 0, :3, :3] * conv.weight[0, 0]).sum() + conv.bias[0]
        last = (F.pad(x, (0, 1, 0, 1))[0, 0, 6:9, 6:9] * conv.weight[0, 0]).sum() + conv.bias[0]
    assert out.shape == (1, 1, 4, 4)
    assert torch.allclose(out[0, 0, 0, 0], expected, atol=1e-5)
    assert torch.allclose(out[0, 0, 3, 3], last, atol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(8, 8), (24, 40), (64, 16)])
def test_any_multiple_of_eight_works(height: int, width: int) -> None:
    with torch.inference_mode():
        output = ColorizationAutoencoder()(torch.rand(2, 1, height, width))
    assert output.shape == (2, 2, height, width)
    assert float(output.abs().max()) < 1  # tanh


def test_other_sizes_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        ColorizationAutoencoder()(torch.rand(1, 1, 30, 32))


# ── colour ─────────────────────────────────────────────────────────────────────────────────


def test_lab_round_trip_and_ranges() -> None:
    rgb = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    lab = color.rgb_to_lab(rgb)
    assert lab.dtype == np.float32 and lab.shape == rgb.shape
    assert lab[..., 0].min() >= 0 and lab[..., 0].max() <= 100
    assert lab[..., 1:].min() >= -128 and lab[..., 1:].max() <= 127
    np.testing.assert_allclose(
        color.lab_to_rgb(lab), rgb, atol=0.01
    )  # OpenCV's float conversion is approximate
    np.testing.assert_allclose(
        color.decode_lightness(color.encode_lightness(lab[..., 0])), lab[..., 0], atol=1e-4
    )
    gray = rgb[..., :1]
    np.testing.assert_allclose(color.lightness(gray), color.lightness(np.repeat(gray, 3, axis=2)))


def test_colorize_keeps_the_lightness_wherever_the_colour_is_in_gamut() -> None:
    image = smooth_image(61, 83)
    ab = np.random.default_rng(1).uniform(-40, 40, size=(8, 8, 2)).astype(np.float32)
    result = color.colorize(image, color.chroma_models(ab))
    assert result.shape == image.shape and result.dtype == np.float32
    assert result.min() >= 0 and result.max() <= 1
    error = np.abs(color.lightness(result) - color.lightness(image))
    # Colours outside the sRGB gamut are clipped, which moves their L; the others keep it.
    in_gamut = ((result > 0.002) & (result < 0.998)).all(axis=2)
    assert in_gamut.mean() > 0.5
    assert error[in_gamut].max() < 0.5


def test_working_size_keeps_the_aspect_in_multiples_of_eight() -> None:
    assert color.working_size(256, 256, 256) == (256, 256)
    assert color.working_size(1000, 500, 256) == (256, 128)
    assert color.working_size(37, 91, 256) == (104, 256)
    assert color.working_size(10, 10000, 256) == (8, 256)
    assert color.working_size(1, 1, 64) == (64, 64)


# ── inference ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("height", "width"), [(37, 91), (91, 37), (1, 1), (10, 10000), (10000, 10), (64, 64)]
)
def test_output_has_the_input_size(pipe: Pipeline, height: int, width: int) -> None:
    image = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    result = pipe(image)
    assert result.shape == (height, width, 3) and result.dtype == np.float32


def test_luminance_and_detail_are_the_inputs(pipe: Pipeline) -> None:
    image = smooth_image(45, 77)
    image[::7] = 1.0  # fine detail the network never sees at its working size
    result = pipe(image)
    in_gamut = ((result > 0.002) & (result < 0.998)).all(axis=2)
    error = np.abs(color.lightness(result) - color.lightness(image))
    assert in_gamut.mean() > 0.5 and error[in_gamut].max() < 0.5


def test_gray_and_colour_inputs(pipe: Pipeline) -> None:
    colour = smooth_image(40, 56)
    gray = color.lab_to_rgb(
        np.dstack([color.lightness(colour), np.zeros((40, 56, 2), np.float32)])
    )  # same L, no colour
    from_colour, from_gray = pipe(colour), pipe(gray)
    np.testing.assert_allclose(from_colour, from_gray, atol=0.02)  # only L reaches the network
    gray_2d = np.ascontiguousarray(gray[..., 0])  # a 2-D one-channel input
    result = pipe(gray_2d)
    assert result.shape == (40, 56, 3)
    np.testing.assert_allclose(result, from_gray, atol=0.02)
    as_uint8 = pipe((gray_2d * 255).round().astype(np.uint8))
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == (40, 56, 3)


def test_an_already_colourful_image_gets_its_own_lightness(pipe: Pipeline) -> None:
    image = np.zeros((32, 48, 3), np.float32)
    image[:, :16, 0] = image[:, 16:32, 1] = image[:, 32:, 2] = 1.0  # pure red, green, blue
    result = pipe(image)
    assert result.shape == image.shape
    in_gamut = ((result > 0.002) & (result < 0.998)).all(axis=2)
    error = np.abs(color.lightness(result) - color.lightness(image))
    assert error[in_gamut].max() < 0.5


def test_sixteen_bit_and_rgba_pngs(pipe: Pipeline, tmp_path: Path) -> None:
    deep = (smooth_image(30, 20) * 65535).round().astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    result = pipe(str(tmp_path / "deep.png"))
    assert result.shape == (30, 20, 3) and result.dtype == np.uint8
    assert pipe(deep).dtype == np.uint16  # numpy in, the same dtype out

    rgba = np.concatenate(
        [(smooth_image(25, 35) * 255).astype(np.uint8), np.zeros((25, 35, 1), np.uint8)], axis=2
    )
    rgba[..., 3] = np.arange(35, dtype=np.uint8)[None, :] * 7
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba[..., [2, 1, 0, 3]])
    result = pipe(str(tmp_path / "alpha.png"))
    assert result.shape == (25, 35, 4)
    np.testing.assert_array_equal(result[..., 3], rgba[..., 3])


def test_unreadable_inputs_fail_clearly(pipe: Pipeline) -> None:
    with pytest.raises(imgzoo.InvalidImageError, match="2 channels"):
        pipe(np.zeros((8, 8, 2), np.float32))
    with pytest.raises(imgzoo.InvalidImageError, match="empty"):
        pipe(np.zeros((0, 8, 3), np.float32))


def test_bf16_precision_runs() -> None:
    image = smooth_image(24, 40)
    result = imgzoo.load("colorize", weights=False, image_size=32, precision="bf16")(image)
    assert result.shape == image.shape and np.isfinite(result).all()


def test_inference_runs_a_packed_copy_and_keeps_the_loaded_model(pipe: Pipeline) -> None:
    model, packed = pipe.models["model"], pipe.backend.inference_models["model"]
    assert packed is not model
    # Packed wherever this torch build has oneDNN's ops (see imgzoo.prepacked).
    convolutions = [module for module in packed.modules() if isinstance(module, torch.nn.Conv2d)]
    assert all(is_prepacked(module) == _ops_available() for module in convolutions)
    assert not any(is_prepacked(module) for module in model.modules())
    lightness = torch.rand(2, 1, 24, 40) * 2 - 1
    for bf16 in (False, True):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.testing.assert_close(packed(lightness), model(lightness), atol=1e-5, rtol=1e-5)


def test_saved_weights_load_back(tmp_path: Path) -> None:
    task = ColorizeTask(ColorizeConfig(image_size=32))
    model = task.build_models()["model"]
    metadata = {"task": "colorize", "config": task.config.model_dump(mode="json")}
    save_weights(tmp_path / "c.safetensors", state_tensors(model, prefix="model"), metadata=metadata)
    loaded = imgzoo.load("colorize", weights=str(tmp_path / "c.safetensors"))
    assert loaded.config.image_size == 32
    x = torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.model(x), model.eval()(x))


# ── training ────────────────────────────────────────────────────────────────────────────────


def test_make_pair_is_lightness_and_lab() -> None:
    task = ColorizeTask(ColorizeConfig(image_size=32))
    image = smooth_image(32, 32)
    inputs, targets = task.make_pair(Sample(image=image))
    assert inputs.shape == (1, 32, 32) and targets.shape == (3, 32, 32)
    assert torch.equal(inputs, targets[:1])
    assert float(inputs.min()) >= -1 and float(inputs.max()) <= 1 and float(targets[1:].abs().max()) < 1
    np.testing.assert_allclose(task.to_display(targets[None])[0].permute(1, 2, 0).numpy(), image, atol=0.01)
    paired = task.make_pair(Sample(image=np.zeros_like(image), target=image))[1]
    assert torch.equal(paired, targets)  # a paired sample's colour side is the target


def test_to_display_renders_each_kind() -> None:
    task = ColorizeTask()
    lab = torch.zeros(2, 3, 16, 24)
    lab[:, 1] = 0.5  # a = 64: red at L = 50
    for tensor in (lab[:, :1], lab[:, 1:], lab):
        shown = task.to_display(tensor)
        assert shown.shape == (2, 3, 16, 24) and float(shown.min()) >= 0 and float(shown.max()) <= 1
    gray = task.to_display(lab[:, :1])
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    red = task.to_display(lab)
    assert float(red[:, 0].mean()) > float(red[:, 1].mean()) + 0.2
    with pytest.raises(ValueError, match="channels"):
        task.to_display(torch.zeros(1, 4, 8, 8))


def test_rebalanced_weights_favour_rare_colours() -> None:
    gray_bin = int(color.ab_bin_index(np.array(0.0), np.array(0.0)))
    red_bin = int(color.ab_bin_index(np.array(70.0), np.array(50.0)))
    counts = np.zeros(color.AB_BINS**2)
    counts[gray_bin], counts[red_bin] = 1000, 10
    weights = color.rebalance_weights(counts, mix=0.5, sigma=5.0)
    assert weights[red_bin] > 5 * weights[gray_bin]
    assert np.allclose(color.rebalance_weights(counts, mix=1.0, sigma=5.0), 1.0)  # plain MSE
    assert color.gamut_mask()[[gray_bin, red_bin]].all()
    assert 200 < color.gamut_mask().sum() < 400  # Zhang et al. count 313 bins of 10 in gamut

    # The task's per-pixel weights: a batch of mostly gray pixels and a few red ones.
    task = ColorizeTask(ColorizeConfig(loss="rebalanced"))
    target_ab = torch.zeros(1, 2, 10, 10)
    target_ab[0, 0, 0, :3], target_ab[0, 1, 0, :3] = 70 / 128, 50 / 128
    pixel_weights = task.pixel_weights(target_ab)
    assert pixel_weights.shape == (1, 10, 10)
    assert float(pixel_weights[0, 0, 0]) > 5 * float(pixel_weights[0, 5, 5])


@pytest.mark.parametrize("loss", ["mse", "rebalanced"])
def test_one_training_step_lowers_the_loss(loss: str) -> None:
    torch.manual_seed(0)
    # RMSprop's first step moves every weight by about 3 x lr whatever its gradient (the running
    # square starts at 0), which overshoots at the paper's 1e-3 on a single tiny batch.
    task = ColorizeTask(ColorizeConfig(image_size=32, loss=loss, learning_rate=1e-5))
    models = task.build_models()
    optimizers = task.configure_optimizers(models)
    optimizer = optimizers["model"]
    assert isinstance(optimizer, torch.optim.RMSprop)
    assert optimizer.defaults["alpha"] == 0.9 and optimizer.defaults["eps"] == 1e-7
    batch = minifig_batch(task)
    with torch.no_grad():
        before = float(task.loss(models, *batch))
    losses = task.training_step(models, batch, ImmediateStepContext(optimizers))
    with torch.no_grad():
        after = float(task.loss(models, *batch))
    assert float(losses["loss"]) == pytest.approx(before, rel=1e-4)
    assert after < before
    assert task.statistics.pixels == 2 * 32 * 32


def test_metrics_and_baselines() -> None:
    task = ColorizeTask(ColorizeConfig(image_size=32))
    inputs, targets = minifig_batch(task, count=3)
    perfect = task.metrics(targets, targets, inputs)
    assert perfect["psnr"] > 60 and perfect["ssim"] > 0.99
    assert perfect["colorfulness_ratio"] == pytest.approx(1.0)
    assert perfect["psnr_gray"] < perfect["psnr"] and perfect["psnr_mean_color"] < perfect["psnr"]
    assert set(perfect) == {
        "psnr",
        "ssim",
        "colorfulness_ratio",
        "psnr_gray",
        "ssim_gray",
        "psnr_mean_color",
        "ssim_mean_color",
        "colorfulness_ratio_mean_color",
    }
    gray = task.metrics(torch.zeros_like(targets[:, 1:]), targets, inputs)  # a 2-channel ab output
    assert gray["psnr"] == pytest.approx(gray["psnr_gray"]) and gray["colorfulness_ratio"] < 0.05
    # Once training has seen targets, the mean-colour baseline uses their mean ab.
    task.statistics.update(torch.full_like(targets[:, 1:], 0.25))
    assert task.statistics.mean_ab() == pytest.approx((32.0, 32.0))
    assert task.metrics(targets, targets, inputs)["psnr_mean_color"] != perfect["psnr_mean_color"]
    assert task.primary_metric == ("psnr", "max")


def test_a_resumed_rebalanced_run_ends_exactly_like_an_uninterrupted_one(tmp_path: Path) -> None:
    """The colour statistics behind the rebalanced loss travel in the checkpoint."""
    from safetensors.torch import load_file

    from imgzoo.training import Callback, TrainingInterrupted, train

    class StopAfter(Callback):
        def on_step_end(self, trainer: object, step: int, losses: object) -> None:
            if step == 2:
                raise KeyboardInterrupt

    options = {
        "image_size": 16,
        "loss": "rebalanced",
        "learning_rate": 1e-4,
        "steps": 4,
        "batch_size": 2,
        "num_workers": 0,
        "device": "cpu",
        "progress": False,
        "eval_every": 100,
    }
    full = train("colorize", "minifigs:n=20", out=tmp_path / "full", **options)
    with pytest.raises(TrainingInterrupted):
        train("colorize", "minifigs:n=20", out=tmp_path / "resumed", callbacks=[StopAfter()], **options)
    resumed = train("colorize", "minifigs:n=20", out=tmp_path / "resumed", resume=True, **options)
    assert full.weights is not None and resumed.weights is not None
    expected, actual = load_file(str(full.weights)), load_file(str(resumed.weights))
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


# ── the full-resolution path ───────────────────────────────────────────────────────────────────


def test_guided_upsampling_stops_colour_at_a_lightness_edge() -> None:
    # A gray step (L 30 | 70) at column 133 of 256, and chroma predicted on a 16x16 grid: warm
    # where a cell's centre is left of the step, cool where it is right (the cell holding the
    # step is mostly right). Bilinear chroma fades across the cells around the step; guided
    # chroma must flip where the lightness does.
    size, grid, step = 256, 16, 133
    lightness = np.where(np.arange(size) < step, 30.0, 70.0).astype(np.float32)
    lab = np.zeros((size, size, 3), np.float32)
    lab[..., 0] = lightness
    gray = color.lab_to_rgb(lab)
    guide = cv2.resize(lab[..., 0], (grid, grid), interpolation=cv2.INTER_AREA) / 100
    warm, cool = np.array([40.0, 20.0], np.float32), np.array([-30.0, -20.0], np.float32)
    left_of_step = (np.arange(grid) + 0.5) * (size / grid) < step
    ab = np.where(left_of_step[None, :, None], warm, cool).astype(np.float32)
    ab = np.ascontiguousarray(np.broadcast_to(ab, (grid, grid, 2)))

    def chroma(models: np.ndarray) -> np.ndarray:
        return color.rgb_to_lab(color.colorize(gray, models))[size // 2, :, 1:]

    guided, plain = (
        chroma(color.chroma_models(ab, guide, radius=2, eps=1e-4)),
        chroma(color.chroma_models(ab)),
    )
    for result in (guided, plain):  # far from the step both keep each side's colour
        np.testing.assert_allclose(result[:100], np.broadcast_to(warm, (100, 2)), atol=3)
        np.testing.assert_allclose(result[170:], np.broadcast_to(cool, (86, 2)), atol=3)
    near_left, near_right = guided[step - 3 : step], guided[step : step + 3]
    assert (np.abs(near_left - warm).sum(1) < np.abs(near_left - cool).sum(1)).all()
    assert (np.abs(near_right - cool).sum(1) < 6).all()  # within a tenth of the warm-cool distance
    jump = guided[step - 1] - guided[step]
    assert (jump > 0.6 * (warm - cool)).all()  # most of the chroma step sits on the lightness step
    assert (np.abs(plain[step - 1] - plain[step]) < 0.2 * (warm - cool)).all()  # bilinear bleeds


def test_the_8_bit_path_matches_the_float_path_within_rounding() -> None:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8), (0, 0), 2)
    models = color.chroma_models(rng.uniform(-40, 40, (12, 16, 2)).astype(np.float32))
    lean = color.colorize(image, models)
    assert lean.dtype == np.uint8 and lean.shape == image.shape
    # The float path, in float32 Lab: the whole pipeline's result before this path existed.
    reference = color.colorize(image.astype(np.float32) / 255, models)
    difference = np.abs(lean.astype(np.float32) - reference * 255)
    assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 2.5
    for dtype, scale in ((np.uint16, 65535), (np.float32, 1)):  # 16-bit goes the float way
        converted = (image.astype(np.float64) * scale / 255).astype(dtype)
        np.testing.assert_allclose(color.colorize(converted, models), reference, atol=1e-4)


def test_an_8_bit_picture_comes_back_8_bit_like_its_float_self(pipe: Pipeline) -> None:
    image = (smooth_image(50, 70) * 255).round().astype(np.uint8)
    lean, floating = pipe(image), pipe(image.astype(np.float32) / 255)
    assert lean.dtype == np.uint8 and floating.dtype == np.float32
    assert np.abs(lean.astype(np.float32) - floating * 255).mean() < 1.0


def test_the_confidence_only_fades_chroma_and_spares_minifigures() -> None:
    from imgzoo_colorize.task import flip_agreement

    pipeline = imgzoo.load("colorize")  # the shipped weights: the confidence is about them
    task = pipeline.task
    pictures = [sample.image for sample in MinifigsDataset(resolution=128, n=6, seed=5)]
    photos = sorted((Path(__file__).parents[2] / "examples" / "photos").glob("*.jpg"))
    pictures += [imgzoo.images.load_image(path).pixels for path in photos]
    confidences = []
    for picture in pictures:
        inputs = task.preprocess(picture)
        with torch.inference_mode():
            faded = task.forward(pipeline.models, inputs)[:, 1:3]
            ab = pipeline.model(inputs).float()
            mirrored = pipeline.model(inputs.flip(-1)).float().flip(-1)
            _, domain_fade = task.domain_fade(task.domain_features(pipeline.models, inputs))
        average = (ab + mirrored) / 2
        confidence = float(flip_agreement(ab, mirrored, task.config.confidence_tolerance))
        assert 0 < confidence <= 1
        torch.testing.assert_close(faded, average * confidence * float(domain_fade))
        assert (faded.norm(dim=1) <= average.norm(dim=1) + 1e-6).all()
        confidences.append(confidence)
    minifigures, real_photos = confidences[:6], confidences[6:]
    assert min(minifigures) > 0.8  # their colours kept within 20 %
    assert max(real_photos) < min(minifigures)


def test_pipeline_evaluation_of_colorize_against_the_gray_input() -> None:
    evaluation = imgzoo.evaluate(
        "colorize", "minifigs:n=3,seed=1", weights=False, device="cpu", mode="pipeline", resolution=40
    )
    assert set(evaluation) == {"psnr", "ssim", "colorfulness_ratio", "psnr_gray", "ssim_gray"}
    task = ColorizeTask(ColorizeConfig())
    truths = [sample.image for sample in MinifigsDataset(resolution=40, n=3, seed=1)]
    gray_psnr = [
        10
        * np.log10(
            1 / np.mean((np.repeat(task.degrade(truth, np.random.default_rng(0)), 3, axis=2) - truth) ** 2)
        )
        for truth in truths
    ]
    assert [item["psnr_gray"] for item in evaluation.per_image] == pytest.approx(gray_psnr, abs=1e-3)


# ── knowing its domain ──────────────────────────────────────────────────────────────────────


def photo_like(size: int = 128, seed: int = 0) -> np.ndarray:
    """A synthetic picture with a photo's fine texture and soft colour (no minifigure in sight):
    blurred noise at two scales, tinted, as float32 RGB."""
    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), 0.7)
    coarse = cv2.resize(rng.normal(size=(size // 16, size // 16)).astype(np.float32), (size, size))
    texture = np.clip(0.5 + 0.2 * fine / fine.std() + 0.1 * coarse, 0, 1)
    return np.ascontiguousarray(texture[..., None] * np.array([0.9, 0.7, 0.5], dtype=np.float32))


def fitted_weights(path: Path, *, fade_start: float, fade_end: float) -> Path:
    """Untrained tiny-working-size colorize weights, with domain statistics fitted on a few
    minifigures and the given fade thresholds, saved to ``path``."""
    from imgzoo.domain import DomainStatistics, fit_domain_statistics, write_domain_statistics

    torch.manual_seed(0)
    task = ColorizeTask(ColorizeConfig(image_size=32))
    model = task.build_models()["model"].eval()
    config = task.config.model_dump(mode="json")
    save_weights(path, state_tensors(model, prefix="model"), metadata={"task": "colorize", "config": config})
    pictures = [
        task.degrade(sample.image, np.random.default_rng(0))
        for sample in MinifigsDataset(resolution=32, n=6, seed=2)
    ]
    fitted = fit_domain_statistics(task, {"model": model}, pictures[:4], pictures[4:], rank=2)
    thresholds = {"fade_start": torch.tensor(fade_start), "fade_end": torch.tensor(fade_end)}
    write_domain_statistics(path, DomainStatistics(**{**fitted.__dict__, **thresholds}))
    return path


def test_the_fade_is_one_then_smooth_then_zero_and_has_no_branches() -> None:
    from imgzoo.domain import domain_fade

    scores = torch.linspace(0, 4, 41)
    start, end = torch.tensor(1.0), torch.tensor(3.0)
    fade = domain_fade(scores, start, end)
    assert (fade[scores <= 1] == 1).all() and (fade[scores >= 3] == 0).all()
    assert (fade.diff() <= 0).all() and float(domain_fade(torch.tensor(2.0), start, end)) == 0.5
    # Symbolic tracing fails on any Python branch on a tensor's value; the traced graph is the fade.
    traced = torch.fx.symbolic_trace(domain_fade)
    torch.testing.assert_close(traced(scores, start, end), fade)


def test_domain_statistics_round_trip_through_the_weights_file(tmp_path: Path) -> None:
    from imgzoo.domain import DOMAIN_KEY, DomainStatistics
    from imgzoo.weights import read_metadata

    path = fitted_weights(tmp_path / "colorize.safetensors", fade_start=2.0, fade_end=2.5)
    stored = read_metadata(path)[DOMAIN_KEY]
    loaded = imgzoo.load("colorize", weights=str(path)).task.domain_statistics
    assert isinstance(loaded, DomainStatistics)
    assert loaded.to_metadata() == stored
    assert (float(loaded.fade_start), float(loaded.fade_end)) == (2.0, 2.5)
    assert loaded.components.shape == (2, 2 * 768) and "minifigs" not in loaded.fitted_on  # fitted in memory
    # Without statistics nothing is faded and nothing is said.
    assert imgzoo.load("colorize", weights=False).task.domain_statistics is None


def test_a_picture_past_the_fade_comes_back_gray_with_a_warning_and_one_before_it_untouched(
    tmp_path: Path,
) -> None:
    picture = (photo_like(64) * 255).round().astype(np.uint8)
    gray = picture[..., :1].copy()
    faded = imgzoo.load(
        "colorize", weights=str(fitted_weights(tmp_path / "faded.safetensors", fade_start=0.0, fade_end=1e-6))
    )
    kept = imgzoo.load(
        "colorize", weights=str(fitted_weights(tmp_path / "kept.safetensors", fade_start=1e6, fade_end=2e6))
    )
    unfitted = imgzoo.load("colorize", weights=str(tmp_path / "kept.safetensors"))
    unfitted.task.domain_statistics = None
    with pytest.warns(
        UserWarning, match=r"colorize: this picture looks unlike its training data \(score [\d.]+"
    ):
        result = faded(gray)
    np.testing.assert_array_equal(result, np.repeat(gray, 3, axis=2))  # exactly the gray picture
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(kept(gray), unfitted(gray))


def test_the_shipped_weights_fade_a_photo_like_picture_and_spare_minifigures() -> None:
    pipeline = imgzoo.load("colorize")
    statistics = pipeline.task.domain_statistics
    assert statistics is not None and "minifigs" in statistics.fitted_on
    for sample in MinifigsDataset(resolution=128, n=4, seed=6):
        gray = color.gray_of(sample.image)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fade, no warning
            result = pipeline(gray)
        assert np.abs(result - np.repeat(gray, 3, axis=2)).max() > 0.1  # coloured
    gray = color.gray_of(photo_like())
    with pytest.warns(UserWarning, match="colours faded"):
        result = pipeline(gray)
    np.testing.assert_array_equal(result, np.repeat(gray, 3, axis=2))


def test_the_fade_warning_reaches_run_results_and_the_server() -> None:
    from fastapi.testclient import TestClient

    from imgzoo.serve import ServeSettings, create_app
    from imgzoo.serve.app import WARNING_HEADER

    picture = (photo_like() * 255).round().astype(np.uint8)
    pipeline = imgzoo.load("colorize")
    requests, _ = prepare_requests(ColorizeTask, picture, {})
    results = pipeline.run(requests)
    [message] = results[0].warnings
    assert message.startswith("colorize: this picture looks unlike its training data (score ")
    ok, encoded = cv2.imencode(".png", picture[..., ::-1])
    assert ok
    with TestClient(
        create_app(["colorize"], ServeSettings(precision="fp32")), base_url="http://localhost"
    ) as client:
        response = client.post(
            "/v1/tasks/colorize", files={"image": ("x.png", encoded.tobytes(), "image/png")}
        )
    assert response.status_code == 200, response.text
    assert response.headers.get_list(WARNING_HEADER) == [message]
