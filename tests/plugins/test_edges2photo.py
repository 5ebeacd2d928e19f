"""The ``edges2photo`` task: its two architectures, edge extraction, inference on awkward
inputs and the two-optimizer training step. Models are untrained and tiny (ngf = ndf = 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo.data import PairTransform, Sample
from imgzoo.errors import ZooError
from imgzoo.images import Image
from imgzoo.pipeline import Request
from imgzoo.prepacked import _ops_available, is_prepacked
from imgzoo.tiling import Tiling
from imgzoo.weights import save_weights, state_tensors
from imgzoo_edges2photo.config import Edges2PhotoConfig
from imgzoo_edges2photo.edges import _thin, edge_map_issue, extract_edges, median_thresholds
from imgzoo_edges2photo.patchgan import build_patchgan, receptive_field
from imgzoo_edges2photo.task import Edges2PhotoTask
from imgzoo_edges2photo.unet import DROPOUT_LEVELS, FusedUNet, UNetGenerator, build_unet

REPO = Path(__file__).resolve().parents[2]
TINY = {"ngf": 8, "ndf": 8}


@pytest.fixture(autouse=True)
def seeded_single_thread() -> Iterator[None]:
    """Seeded, and on one thread: these tensors are tiny, and on a busy machine a second
    thread only adds waiting at every operation."""
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.random.set_rng_state(state)


def drawing(height: int = 64, width: int = 64) -> np.ndarray:
    """Black outlines of a box and a diagonal on white, HxWx1 float32: an edge map."""
    image = np.ones((height, width, 1), np.float32)
    image[height // 4, width // 4 : 3 * width // 4] = 0
    image[3 * height // 4, width // 4 : 3 * width // 4] = 0
    image[height // 4 : 3 * height // 4, width // 4] = 0
    image[height // 4 : 3 * height // 4, 3 * width // 4] = 0
    for i in range(min(height, width) // 2):
        image[i, i] = 0
    return image


def photo(size: int = 64) -> np.ndarray:
    """A colourful 'photo': a red disc on a green-blue gradient, HxWx3 float32."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.stack([0.2 + 0.3 * xs, 0.5 + 0.2 * ys, 0.6 - 0.2 * xs], axis=2)
    image[(ys - 0.5) ** 2 + (xs - 0.5) ** 2 < 0.08] = (0.9, 0.15, 0.1)
    return image.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


def test_parameter_counts_match_the_reference_implementation() -> None:
    with torch.device("meta"):  # shapes only: 54M parameters without allocating them
        generator = build_unet(ngf=64, num_downs=8)
        discriminator = build_patchgan(ndf=64)
    assert generator.num_parameters() == 54_413_955
    assert discriminator.num_parameters() == 2_768_705


def test_shipped_generator_fits_in_32_mb_as_fp16() -> None:
    with torch.device("meta"):
        models = Edges2PhotoTask().build_models()
    assert models["generator"].num_parameters() * 2 < 32_000_000


def test_patchgan_gives_30x30_logits_for_256_and_sees_70x70_patches() -> None:
    discriminator = build_patchgan(ndf=8)
    pair = torch.zeros(1, 3, 256, 256)
    assert discriminator(pair, pair).shape == (1, 1, 30, 30)
    assert receptive_field(3) == 70


@pytest.mark.parametrize("num_downs", [5, 8])
def test_dropout_is_in_the_three_innermost_decoder_levels(num_downs: int) -> None:
    generator = build_unet(ngf=4, num_downs=num_downs)
    rates = [level.dropout for level in generator.decoder]  # decoder[0] is the innermost level
    assert DROPOUT_LEVELS == 3
    assert rates == [0.5] * 3 + [0.0] * (num_downs - 3)


@pytest.mark.parametrize(
    ("num_downs", "height", "width"), [(5, 32, 32), (5, 64, 96), (6, 64, 64), (6, 128, 64)]
)
def test_unet_skips_line_up_and_output_has_the_input_size(num_downs: int, height: int, width: int) -> None:
    generator = build_unet(ngf=4, num_downs=num_downs).eval()
    assert generator.size_multiple == 2**num_downs
    output = generator(torch.rand(2, 3, height, width) * 2 - 1)
    assert output.shape == (2, 3, height, width)
    assert output.abs().max() <= 1  # tanh


def test_depth_follows_image_size_unless_set() -> None:
    assert Edges2PhotoConfig().levels == 8
    assert Edges2PhotoConfig(image_size=64).levels == 6
    assert Edges2PhotoConfig(image_size=96).levels == 5
    with pytest.raises(imgzoo.ConfigError, match="not a multiple of 2\\*\\*num_downs = 256"):
        imgzoo.load("edges2photo", weights=False, image_size=64, num_downs=8)
    with pytest.raises(imgzoo.ConfigError, match="too small for disc_layers=3"):
        imgzoo.load("edges2photo", weights=False, image_size=16)


# --------------------------------------------------------------------------------------------
# Edges
# --------------------------------------------------------------------------------------------


def test_edges_are_black_lines_on_white() -> None:
    edges = extract_edges(photo())
    assert edges.shape == (64, 64, 1) and edges.dtype == np.float32
    assert set(np.unique(edges)) == {0.0, 1.0}
    assert 0.8 < edges.mean() < 0.99  # mostly paper, some lines
    assert edges[..., 0][0:8, 0:8].all()  # smooth background: no lines
    assert extract_edges(photo()[..., 0]).shape == (64, 64)  # 2-D in, 2-D out
    assert edge_map_issue(edges) is None


def test_thresholds_follow_the_median() -> None:
    assert median_thresholds(np.full((8, 8), 150, np.uint8), sigma=0.2) == pytest.approx((120, 180))
    # The same step of 40 grey levels is an edge in a dark picture but not in a bright one.
    dark = np.full((32, 32), 20, np.uint8)
    dark[:, 16:] = 60
    bright = dark + 180
    assert (extract_edges(dark) == 0).any()
    assert not (extract_edges(bright) == 0).any()


def test_small_components_are_removed() -> None:
    image = np.full((64, 64), 200, np.uint8)
    image[10:50, 10:50] = 40  # a big square: a long outline
    image[56:59, 56:59] = 40  # a speck: an outline of about a dozen pixels
    speck = (slice(54, 63), slice(54, 63))
    kept = extract_edges(image, min_component=0)
    cleaned = extract_edges(image, min_component=20)
    assert (kept[speck] == 0).any() and cleaned[speck].all()
    assert (cleaned[5:55, 5:55] == kept[5:55, 5:55]).all()


def test_thinning_leaves_one_pixel_wide_lines() -> None:
    bar = np.zeros((20, 40), bool)
    bar[5:12, 3:37] = True
    thin = _thin(bar)
    assert (thin[:, 8:32].sum(axis=0) == 1).all()


def test_edges_are_deterministic() -> None:
    np.testing.assert_array_equal(extract_edges(photo()), extract_edges(photo().copy()))


def test_uniform_images_have_no_edges() -> None:
    for value in (0.0, 1.0):
        assert extract_edges(np.full((16, 16, 3), value, np.float32)).all()


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(37, 91), (1, 1), (3000, 20), (64, 64)])
def test_any_size_gives_an_output_of_that_size(height: int, width: int) -> None:
    pipeline = imgzoo.load("edges2photo", weights=False, **TINY)
    image = np.ones((height, width, 3), np.uint8) * 255
    output = pipeline(image)
    assert output.shape == (height, width, 3) and output.dtype == np.uint8


def test_huge_inputs_are_shrunk_to_max_side() -> None:
    pipeline = imgzoo.load("edges2photo", weights=False, max_side=64, **TINY)
    assert pipeline.task.preprocess(np.ones((300, 100, 1), np.float32)).shape == (1, 3, 256, 256)
    assert pipeline(np.ones((300, 100), np.float32)).shape == (300, 100, 3)


def test_all_white_and_all_black_inputs_work_and_black_warns() -> None:
    pipeline = imgzoo.load("edges2photo", weights=False, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        white = pipeline(np.ones((32, 32), np.float32))
    with pytest.warns(UserWarning, match="inverted"):
        black = pipeline(np.zeros((32, 32), np.float32))
    for output in (white, black):
        assert output.shape == (32, 32, 3) and np.isfinite(output).all()


def test_a_photo_warns_unless_edges_are_extracted() -> None:
    with pytest.warns(UserWarning, match="extract_edges=True"):
        imgzoo.load("edges2photo", weights=False, **TINY)(photo())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        output = imgzoo.load("edges2photo", weights=False, extract_edges=True, **TINY)(photo())
    assert output.shape == (64, 64, 3)


@pytest.mark.parametrize("bad", [np.zeros((0, 5)), np.zeros((4, 4, 5)), np.array([[np.nan]])])
def test_unreadable_inputs_fail_with_invalid_image_error(bad: np.ndarray) -> None:
    with pytest.raises(imgzoo.InvalidImageError):
        imgzoo.run("edges2photo", bad, weights=False, **TINY)


def test_inference_is_deterministic_unless_dropout_is_kept() -> None:
    image = drawing()
    fixed = imgzoo.load("edges2photo", weights=False, **TINY)
    np.testing.assert_array_equal(fixed(image), fixed(image))
    varied = imgzoo.load("edges2photo", weights=False, dropout_at_inference=True, **TINY)
    varied.models["generator"].load_state_dict(fixed.models["generator"].state_dict())
    assert not np.array_equal(varied(image), varied(image))
    assert not varied.model.training  # sampling never switches the model's mode


def with_learned_statistics(generator: UNetGenerator) -> UNetGenerator:
    """The generator in eval mode with batch norm statistics and scales far from their initial
    values, as training leaves them: folding that ignored any of them would show."""
    generator.train()
    with torch.no_grad():
        generator(torch.randn(2, 3, 256, 256) * 0.5)
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return generator.eval()


@pytest.mark.parametrize(
    ("norm", "upsample"),
    [
        ("batch", "resize"),
        ("batch", "transposed"),
        ("instance", "resize"),
        ("none", "transposed"),
        ("none", "resize"),
    ],
)
def test_the_fused_generator_computes_what_the_generator_does(norm: str, upsample: str) -> None:
    generator = with_learned_statistics(build_unet(ngf=8, norm=norm, upsample=upsample))  # type: ignore[arg-type]
    before = {name: value.clone() for name, value in generator.state_dict().items()}
    fused = generator.fused_for_inference()
    inputs = torch.rand(2, 3, 512, 256) * 2 - 1  # a 2x1 bottleneck: not only the square case
    with torch.inference_mode():
        torch.testing.assert_close(fused(inputs), generator(inputs), atol=1e-5, rtol=1e-5)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in fused.modules())
    # The generator it came from is untouched: same modules, same tensors.
    assert generator.state_dict().keys() == before.keys()
    for name, value in generator.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("size", [(1, 1), (1, 4), (6, 9)])
def test_a_resize_convolution_is_a_transposed_convolution(bias: bool, size: tuple[int, int]) -> None:
    from imgzoo_edges2photo.unet import _as_transposed

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, padding=1, bias=bias)
    inputs = torch.randn(2, 5, *size)
    with torch.inference_mode():
        expected = conv(torch.nn.functional.interpolate(inputs, scale_factor=2.0, mode="nearest"))
        transposed = _as_transposed(conv)(inputs)
    assert transposed.shape == (2, 7, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(transposed, expected, atol=1e-5, rtol=1e-5)


def test_the_pipeline_runs_the_fused_generator_and_keeps_the_loaded_one() -> None:
    pipeline = imgzoo.load("edges2photo", precision="fp32")  # the shipped weights
    assert isinstance(pipeline.backend.inference_models["generator"], FusedUNet)
    generator = pipeline.model
    assert isinstance(generator, UNetGenerator) and pipeline.models["generator"] is generator
    # The fused copy's convolutions pack their weights for oneDNN; the loaded ones are untouched.
    fused = pipeline.backend.inference_models["generator"]
    convolutions = [module for module in fused.modules() if isinstance(module, torch.nn.modules.conv._ConvNd)]
    # Packed wherever this torch build has oneDNN's ops (see imgzoo.prepacked).
    assert convolutions and all(is_prepacked(module) == _ops_available() for module in convolutions)
    assert not any(is_prepacked(module) for module in generator.modules())
    image = drawing(256, 256)
    inputs = pipeline.task.preprocess(image)
    with torch.inference_mode():
        unfused = pipeline.task.postprocess(pipeline.task.forward({"generator": generator}, inputs)[0], image)
    [result] = pipeline.run([Request(Image(image, None, "drawing"))])
    np.testing.assert_allclose(result.output, np.clip(unfused, 0, 1), atol=1e-5)


def test_sampling_varies_the_fused_generator_too() -> None:
    fused = with_learned_statistics(build_unet(ngf=8)).fused_for_inference()
    inputs = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(fused(inputs), fused(inputs))
        assert not torch.equal(fused(inputs, sample=True), fused(inputs, sample=True))


def test_only_an_eval_mode_generator_is_fused() -> None:
    with pytest.raises(ZooError, match=r"call \.eval\(\) on it first"):
        build_unet(ngf=8).train().fused_for_inference()


def test_generator_only_weights_load_and_reproduce(tmp_path: Path) -> None:
    pipeline = imgzoo.load("edges2photo", weights=False, **TINY)
    path = tmp_path / "e2p.safetensors"
    metadata = {"task": "edges2photo", "config": pipeline.config.model_dump(mode="json")}
    save_weights(path, state_tensors(pipeline.model, prefix="generator"), metadata=metadata)
    reloaded = imgzoo.load("edges2photo", weights=str(path))
    assert reloaded.config.ngf == 8 and reloaded.config.num_downs == 8
    np.testing.assert_array_equal(reloaded(drawing()), pipeline(drawing()))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


class StepRecorder:
    """A minimal StepContext: backward, step, zero the gradients; records the order."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers
        self.step = 0
        self.calls: list[str] = []

    def optimize(self, optimizer: str, loss: torch.Tensor) -> torch.Tensor:
        loss.backward()
        self.optimizers[optimizer].step()
        self.optimizers[optimizer].zero_grad(set_to_none=True)
        self.calls.append(optimizer)
        return loss.detach()


def tiny_task(**overrides: object) -> tuple[Edges2PhotoTask, dict[str, torch.nn.Module]]:
    config = {"image_size": 32, "learning_rate": 2e-3, **TINY, **overrides}  # a high rate: visible in 8 steps
    task = Edges2PhotoTask(Edges2PhotoConfig.model_validate(config))
    return task, dict(task.build_models())


def tiny_batch(task: Edges2PhotoTask) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [
        task.make_pair(Sample(image=photo(32)[::step, ::step].repeat(step, 0).repeat(step, 1)))
        for step in (1, 2)
    ]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def test_make_pair_uses_edges_of_a_photo_or_the_paired_input() -> None:
    task = Edges2PhotoTask(Edges2PhotoConfig(image_size=64))
    inputs, target = task.make_pair(Sample(image=photo()))
    expected = torch.from_numpy(extract_edges(photo())).permute(2, 0, 1) * 2 - 1
    assert inputs.shape == target.shape == (3, 64, 64)
    assert torch.equal(inputs, expected.expand(3, -1, -1))
    assert torch.allclose(target, torch.from_numpy(photo()).permute(2, 0, 1) * 2 - 1)
    paired_input, paired_target = task.make_pair(Sample(image=np.repeat(drawing(), 3, 2), target=photo()))
    assert torch.equal(paired_input[0], torch.from_numpy(drawing()[..., 0]) * 2 - 1)
    assert torch.equal(paired_target, target)


def test_the_input_made_from_a_photo_is_its_edge_map_as_in_training() -> None:
    task = Edges2PhotoTask(Edges2PhotoConfig(image_size=64))
    lines = task.degrade(photo(), np.random.default_rng(0))
    np.testing.assert_array_equal(lines, extract_edges(photo()))
    inputs, _ = task.make_pair(Sample(image=photo()))
    assert torch.equal(inputs[0], torch.from_numpy(lines[..., 0]) * 2 - 1)


def test_augmentations_are_pix2pix_jitter() -> None:
    task = Edges2PhotoTask(Edges2PhotoConfig(image_size=64))
    assert Edges2PhotoTask().augmentations() == {"jitter_resize": 286, "random_crop": True, "flip": True}
    transform = PairTransform(64, **task.augmentations())
    sample = transform(Sample(image=photo(100), target=photo(100)), np.random.default_rng(0))
    assert sample.image.shape == (64, 64, 3) and np.array_equal(sample.image, sample.target)


def test_one_training_step_updates_both_models_discriminator_first() -> None:
    task, models = tiny_task()
    for model in models.values():
        model.train()
    before = {name: [p.detach().clone() for p in model.parameters()] for name, model in models.items()}
    ctx = StepRecorder(task.configure_optimizers(models))
    losses = task.training_step(models, tiny_batch(task), ctx)
    assert ctx.calls == ["discriminator", "generator"]
    assert set(losses) == {"discriminator", "generator", "gan", "l1"}
    for name, model in models.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], model.parameters(), strict=True)), name
        assert all(p.requires_grad for p in model.parameters())


def test_feature_matching_adds_its_loss_and_changes_the_generators_step() -> None:
    task, models = tiny_task(feature_matching_weight=10.0)
    for model in models.values():
        model.train()
    discriminator = models["discriminator"]
    logits, features = discriminator(*tiny_batch(task), with_features=True)
    assert torch.equal(logits, discriminator(*tiny_batch(task)))
    assert len(features) == task.config.disc_layers + 1  # one per LeakyReLU

    def generator_after_one_step(weight: float) -> tuple[dict[str, torch.Tensor], set[str]]:
        torch.manual_seed(0)
        task, models = tiny_task(feature_matching_weight=weight)
        ctx = StepRecorder(task.configure_optimizers(models))
        losses = task.training_step(models, tiny_batch(task), ctx)
        return models["generator"].state_dict(), set(losses)

    with_matching, losses = generator_after_one_step(10.0)
    without, losses_without = generator_after_one_step(0.0)
    assert losses - losses_without == {"feature_matching"}
    assert any(not torch.equal(with_matching[name], without[name]) for name in without)


@pytest.mark.parametrize("overrides", [{}, {"gan_loss": "lsgan"}, {"gan_weight": 0.0}])
def test_l1_decreases_over_a_few_steps(overrides: dict[str, object]) -> None:
    task, models = tiny_task(**overrides)
    for model in models.values():
        model.train()
    optimizers = task.configure_optimizers(models)
    assert set(optimizers) == (
        {"generator"} if overrides.get("gan_weight") == 0 else {"generator", "discriminator"}
    )
    ctx, batch = StepRecorder(optimizers), tiny_batch(task)
    l1 = [float(task.training_step(models, batch, ctx)["l1"]) for _ in range(8)]
    assert l1[-1] < 0.8 * l1[0]


def test_metrics_compare_color_and_sharpness_with_the_photos() -> None:
    task = Edges2PhotoTask()
    targets = torch.from_numpy(photo()).permute(2, 0, 1)[None] * 2 - 1
    same = task.metrics(targets, targets, targets)
    assert same["l1"] == 0 and same["ssim"] == pytest.approx(1)
    assert same["colorfulness_ratio"] == pytest.approx(1) and same["sharpness_ratio"] == pytest.approx(1)
    grey = task.metrics(torch.zeros_like(targets), targets, targets)
    assert grey["colorfulness_ratio"] < 0.01 and grey["sharpness_ratio"] < 0.01


# --------------------------------------------------------------------------------------------
# Plugin
# --------------------------------------------------------------------------------------------


def test_listing_the_task_does_not_import_torch() -> None:
    code = (
        "import sys, imgzoo, imgzoo_edges2photo.edges; assert 'edges2photo' in imgzoo.list_tasks(); "
        "imgzoo.task_info('edges2photo'); assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "core"), str(REPO / "plugins")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr


def test_large_inputs_run_in_tiles_at_their_own_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    tiling = Tiling(tile=512, overlap=64, halo=16, multiple=256)
    pipeline = imgzoo.load("edges2photo", weights=False, max_side=64, tile=tiling, **TINY)
    pipeline.memory_needed([(600, 300)])  # the one-time memory probe, a small forward pass of its own
    seen: list[tuple[int, ...]] = []
    preprocess = pipeline.task.preprocess
    monkeypatch.setattr(
        pipeline.task, "preprocess", lambda image: seen.append(image.shape) or preprocess(image)
    )
    output = pipeline(drawing(600, 300))
    assert output.shape == (600, 300, 3)
    assert len(seen) == 2 and all(max(shape[:2]) <= 512 for shape in seen)
    assert sum(shape[0] for shape in seen) > 600  # overlapping native-size tiles, nothing shrunk to 64
    # Up to the default tile (1024), images still run whole, and shrink to max_side as before.
    assert Edges2PhotoTask.tiling is not None and not Edges2PhotoTask.tiling.splits(1024, 1024)


def test_the_pix2pix_parity_decoder_stays_available() -> None:
    with torch.device("meta"):
        resized = Edges2PhotoTask().build_models()["generator"]
        parity = Edges2PhotoTask(Edges2PhotoConfig(upsample="transposed")).build_models()["generator"]
    assert Edges2PhotoConfig().upsample == "resize"
    assert not any(isinstance(module, torch.nn.ConvTranspose2d) for module in resized.modules())
    assert sum(isinstance(module, torch.nn.ConvTranspose2d) for module in parity.modules()) == 8
    assert resized.num_parameters() < parity.num_parameters()  # 3x3 kernels where pix2pix has 4x4


@pytest.mark.parametrize("upsample", ["resize", "transposed"])
def test_only_the_transposed_decoder_turns_a_flat_map_into_a_2x2_pattern(upsample: str) -> None:
    torch.manual_seed(0)
    level = build_unet(ngf=4, num_downs=5, upsample=upsample).eval().decoder[2]  # an inner level
    flat = torch.ones(1, level.conv.in_channels, 8, 8)
    with torch.inference_mode():
        interior = level(flat)[..., 2:-2, 2:-2]  # away from the zero padding at the borders
    phases = interior.unfold(-2, 2, 2).unfold(-2, 2, 2)  # each 2x2 cell's four pixels
    spread = (phases - phases.mean((-1, -2), keepdim=True)).abs().max().item()
    if upsample == "resize":
        assert spread < 1e-5  # every output pixel sees the same kernel
    else:
        assert spread > 1e-3  # odd and even pixels see different weights


def test_a_config_without_upsample_gets_the_resize_decoder() -> None:
    assert Edges2PhotoConfig.model_validate({"ngf": 8, "num_downs": 6}).upsample == "resize"
    pipeline = imgzoo.load("edges2photo", weights="minifigs-preview", precision="fp32")
    assert pipeline.config.upsample == pipeline.task.config.upsample == "resize"


@pytest.mark.parametrize("num_downs", [5, 3], ids=["deeper-than-the-domain-level", "shallower"])
def test_the_domain_features_taken_on_the_way_equal_those_computed_alone(num_downs: int) -> None:
    torch.manual_seed(0)
    generator = build_unet(ngf=4, num_downs=num_downs).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for model in (generator, generator.fused_for_inference()):
            photo, features = model(x, with_domain_features=True)
            torch.testing.assert_close(photo, model(x))
            torch.testing.assert_close(features, model.domain_features(x))


def test_a_drawing_unlike_the_training_drawings_warns_and_a_familiar_one_does_not(tmp_path: Path) -> None:
    from imgzoo.domain import DOMAIN_KEY, fit_domain_statistics, write_domain_statistics
    from imgzoo.weights import read_metadata
    from imgzoo_minifigs.dataset import MinifigsDataset

    task = Edges2PhotoTask(Edges2PhotoConfig(**TINY))
    models = task.build_models()
    path = tmp_path / "edges2photo.safetensors"
    tensors = state_tensors(models["generator"].eval(), prefix="generator")
    save_weights(
        path, tensors, metadata={"task": "edges2photo", "config": task.config.model_dump(mode="json")}
    )
    edge_maps = [
        task.degrade(sample.image, np.random.default_rng(0))
        for sample in MinifigsDataset(resolution=256, n=24, seed=2)
    ]
    statistics = fit_domain_statistics(
        task, task.prepare_inference(models), edge_maps[:16], edge_maps[16:], rank=4
    )
    write_domain_statistics(path, statistics)
    assert read_metadata(path)[DOMAIN_KEY]["fade_start"] == pytest.approx(float(statistics.fade_start))

    pipeline = imgzoo.load("edges2photo", weights=str(path), **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline(
            task.degrade(MinifigsDataset(resolution=256, n=2, seed=9)[1].image, np.random.default_rng(0))
        )
    # Dense hatching: an edge map by every pixel test, but nothing like a minifigure's outline.
    # (At the generator's 256 px: a smaller drawing is padded with white paper up to it.)
    hatching = np.ones((256, 256, 1), np.float32)
    hatching[::3] = 0
    hatching[:, ::5] = 0
    with pytest.warns(UserWarning, match=r"edges2photo: this drawing looks unlike its training data \(score"):
        pipeline(hatching)
    # A photo still gets its own warning too.
    with pytest.warns(UserWarning, match="does not look like an edge map"):
        pipeline(photo())
