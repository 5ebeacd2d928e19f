"""The task contract beyond same-size pictures: a size-changing task, a task with a named extra
input, a float-map task, alpha."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import imgzoo
from imgzoo import model_cache, plugins, testing
from imgzoo.cli import main
from imgzoo.images import load_image, save_image
from toy_contract_tasks import ToyConfig, ToyDepthTask, ToyInpaintTask, ToyUpscaleTask
from toy_tasks import DeclaringPlugin, InvertTask

pytestmark = pytest.mark.usefixtures("contract_tasks")


def _picture(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return testing.synthetic_image(height, width, channels, seed=seed)


def _register(*task_classes: type[imgzoo.Task]) -> None:
    imgzoo.register_plugin(DeclaringPlugin(*task_classes), name="kinds-extra")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["run", *argv])
    return code, capsys.readouterr().err


# ── size-changing: toy-upscale ──────────────────────────────────────────────────────────────
def test_an_upscaling_task_returns_twice_the_size_in_the_input_type() -> None:
    picture = _picture(5, 7)
    assert imgzoo.run("toy-upscale", picture, weights=False).shape == (10, 14, 3)
    as_tensor = imgzoo.run("toy-upscale", torch.from_numpy(picture).permute(2, 0, 1), weights=False)
    assert as_tensor.shape == (3, 10, 14)
    pil = imgzoo.run("toy-upscale", PILImage.fromarray((picture * 255).astype(np.uint8)), weights=False)
    assert isinstance(pil, PILImage.Image) and pil.size == (14, 10)
    batch = imgzoo.run("toy-upscale", [picture, _picture(3, 4)], weights=False)
    assert [result.shape for result in batch] == [(10, 14, 3), (6, 8, 3)]


def test_alpha_is_put_back_at_the_output_size() -> None:
    rgba = np.dstack([(_picture(4, 6) * 255).astype(np.uint8), np.full((4, 6), 90, np.uint8)])
    result = imgzoo.run("toy-upscale", rgba, weights=False)
    assert result.shape == (8, 12, 4) and (result[..., 3] == 90).all()


def test_a_task_that_wants_alpha_receives_rgba_and_its_output_is_final() -> None:
    seen = []

    class AlphaAware(ToyUpscaleTask):
        name = "alpha-aware"
        wants_alpha = True

        def preprocess(self, image: np.ndarray) -> torch.Tensor:
            seen.append(image.shape)
            return super().preprocess(image[..., :3])

    _register(AlphaAware)
    rgba = np.dstack([_picture(4, 6), np.full((4, 6), 0.5, np.float32)])
    assert imgzoo.run("alpha-aware", rgba, weights=False).shape == (8, 12, 3)
    assert imgzoo.run("alpha-aware", _picture(4, 6), weights=False).shape == (8, 12, 3)
    # First the small probe that measures its memory per pixel, given RGBA as well.
    assert seen == [(64, 64, 4), (4, 6, 4), (4, 6, 4)]


def test_an_upscaling_task_runs_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_image(tmp_path / "small.png", _picture(6, 5))
    code, _ = _cli(
        capsys,
        "toy-upscale",
        str(tmp_path / "small.png"),
        "--weights",
        "none",
        "-o",
        str(tmp_path / "big.png"),
    )
    assert code == 0 and load_image(tmp_path / "big.png").pixels.shape == (12, 10, 3)


class TestUpscaleContract(testing.TaskContract):
    """An upscaling task passes every check that applies; the others say why they are skipped."""

    task = "toy-upscale"


def test_check_task_says_which_checks_did_not_apply() -> None:
    skipped = testing.check_task("toy-upscale", skip=["check_trainer"])
    assert set(skipped) == {"check_registered_weights", "check_listing_is_light"}
    assert "registers no local weights" in skipped["check_registered_weights"]


# ── extra input: toy-inpaint ────────────────────────────────────────────────────────────────
def test_an_inpainting_task_takes_its_mask_by_name() -> None:
    image, mask = _picture(8, 9), np.zeros((8, 9), np.uint8)
    mask[2:5, 3:6] = 255
    result = imgzoo.run("toy-inpaint", image, mask=mask, weights=False)
    # The fill net keeps every unmasked pixel: only the mask can have told it which those are.
    np.testing.assert_allclose(result[mask == 0], image[mask == 0], atol=1e-6)
    assert not np.allclose(result[mask > 0], image[mask > 0])
    batch = imgzoo.run("toy-inpaint", [image, image[:4]], mask=[mask, mask[:4]], weights=False)
    assert [item.shape for item in batch] == [(8, 9, 3), (4, 9, 3)]


class _KindsTask(InvertTask):
    """Records the values each of its named inputs reached preprocess() with."""

    name, description = "toy-kinds", "Records its named inputs (test task)"
    extra_inputs = (
        imgzoo.InputSpec("hint", "a picture", channels=3, kind="image"),
        imgzoo.InputSpec("holes", "1 where pixels are missing", channels=1, kind="mask"),
        imgzoo.InputSpec("depth", "metres", channels=1, kind="map"),
    )
    received: ClassVar[dict[str, np.ndarray]] = {}

    def preprocess(self, image: np.ndarray, **named: np.ndarray) -> torch.Tensor:
        _KindsTask.received.update(named)
        return super().preprocess(image)

    def postprocess(self, output: torch.Tensor, image: np.ndarray, **named: np.ndarray) -> np.ndarray:
        return super().postprocess(output, image)


@pytest.mark.parametrize("form", ["array", "file", "tensor"])
def test_each_input_kind_reaches_the_task_with_its_own_values(form: str, tmp_path: Path) -> None:
    _register(_KindsTask)
    hint = (np.arange(12 * 3).reshape(2, 6, 3) * 7).astype(np.uint8)
    holes = np.array([[0, 1, 0, 3, 255, 0]] * 2, np.uint8)  # 0/1, 0/255 or any nonzero value
    depth = np.array([[0, 2, 40, 7, 300, 65535]] * 2, np.uint16)

    def given(values: np.ndarray, name: str) -> object:
        if form == "file":
            cv2.imwrite(str(tmp_path / f"{name}.png"), values[..., ::-1] if values.ndim == 3 else values)
            return tmp_path / f"{name}.png"
        return (
            torch.from_numpy(np.moveaxis(np.atleast_3d(values), 2, 0).copy()) if form == "tensor" else values
        )

    if form == "tensor":  # torch has no uint16: a map tensor is float, and keeps its values too
        depth = depth.astype(np.float32) * -0.5
    imgzoo.run(
        "toy-kinds",
        np.zeros((2, 6, 3), np.uint8),
        hint=given(hint, "hint"),
        holes=given(holes, "holes"),
        depth=given(depth, "depth"),
        weights=False,
    )
    received = _KindsTask.received
    np.testing.assert_allclose(received["hint"], hint / 255, atol=1e-6)
    np.testing.assert_array_equal(received["holes"][..., 0], holes != 0)
    np.testing.assert_array_equal(received["depth"][..., 0], depth.astype(np.float32))
    assert {value.dtype for value in received.values()} == {np.dtype(np.float32)}


def test_a_float_mask_counts_any_nonzero_value() -> None:
    _register(_KindsTask)
    image = np.zeros((1, 4, 3), np.float32)
    holes = np.array([[0.0, 0.2, 1.0, 4.0]], np.float32)
    imgzoo.run("toy-kinds", image, hint=image, holes=holes, depth=holes, weights=False)
    np.testing.assert_array_equal(_KindsTask.received["holes"][..., 0], [[0, 1, 1, 1]])


def test_a_declared_input_kind_must_be_known() -> None:
    broken = type(
        "Broken", (InvertTask,), {"name": "broken", "extra_inputs": (imgzoo.InputSpec("m", kind="blob"),)}
    )  # type: ignore[arg-type]
    assert any(
        "kind must be 'image', 'mask' or 'map'" in problem
        for problem in imgzoo.task.declaration_problems(broken)
    )


def test_inputs_and_config_overrides_are_told_apart() -> None:
    result = imgzoo.run(
        "toy-inpaint", _picture(6, 6), mask=np.zeros((6, 6), np.uint8), weights=False, image_size=8
    )
    assert result.shape == (6, 6, 3)
    pipeline = next(iter(model_cache._cache.values()))
    assert pipeline.config.image_size == 8


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (
            np.zeros((5, 6), np.uint8),
            r"input 'mask' \(array\) is 6x5, but must have the size of its image array, 6x6",
        ),
        (
            np.zeros((6, 6, 3), np.uint8),
            r"input 'mask' \(array\) has 3 channels, but the task takes 1 \(gray\)",
        ),
        (np.zeros((6, 6, 4), np.uint8), r"input 'mask' \(array\) has 4 channels"),
    ],
)
def test_a_mask_that_breaks_the_tasks_rules_is_refused(mask: np.ndarray, message: str) -> None:
    with pytest.raises(imgzoo.InputError, match=r"task 'toy-inpaint': " + message) as caught:
        imgzoo.run("toy-inpaint", _picture(6, 6), mask=mask, weights=False)
    assert caught.value.task == "toy-inpaint" and caught.value.input == "mask"


def test_missing_unknown_and_miscounted_inputs_are_named() -> None:
    with pytest.raises(imgzoo.InputError, match=r"task 'toy-inpaint' needs input 'mask' \(1 where pixels"):
        imgzoo.run("toy-inpaint", _picture(6, 6), weights=False)
    with pytest.raises(
        imgzoo.InputError,
        match=r"task 'toy-inpaint' has no input or config field 'maks': its inputs are 'mask'",
    ):
        imgzoo.run("toy-inpaint", _picture(6, 6), mask=np.zeros((6, 6)), maks=np.zeros((6, 6)), weights=False)
    with pytest.raises(imgzoo.InputError, match=r"got 2 image.* but 1 'mask' input"):
        imgzoo.run("toy-inpaint", [_picture(6, 6)] * 2, mask=np.zeros((6, 6)), weights=False)
    with pytest.raises(
        imgzoo.InvalidImageError, match="input 'mask' of task 'toy-inpaint': array contains NaN"
    ):
        imgzoo.run("toy-inpaint", _picture(6, 6), mask=np.full((6, 6), np.nan), weights=False)
    pipeline = imgzoo.load("toy-inpaint", weights=False)
    with pytest.raises(imgzoo.InputError, match="has no input 'depth'"):
        pipeline(_picture(6, 6), mask=np.zeros((6, 6)), depth=np.zeros((6, 6)))


def test_the_inpainting_task_runs_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_image(tmp_path / "photo.png", _picture(6, 7))
    cv2.imwrite(str(tmp_path / "mask.png"), np.full((6, 7), 255, np.uint8))
    photo, out = str(tmp_path / "photo.png"), str(tmp_path / "out.png")
    code, _ = _cli(
        capsys,
        "toy-inpaint",
        photo,
        "--input",
        f"mask={tmp_path / 'mask.png'}",
        "--weights",
        "none",
        "-o",
        out,
    )
    assert code == 0 and load_image(out).pixels.shape == (6, 7, 3)


def test_a_named_input_is_never_replaced_by_a_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The mask sits where the result would go: even --overwrite may not replace an input.
    save_image(tmp_path / "photo.png", _picture(6, 7))
    (tmp_path / "out").mkdir()
    mask = tmp_path / "out" / "photo.png"
    cv2.imwrite(str(mask), np.full((6, 7), 255, np.uint8))
    before = mask.read_bytes()
    with pytest.raises(imgzoo.ZooError, match="would replace its input"):
        imgzoo.run(
            "toy-inpaint",
            tmp_path / "photo.png",
            mask=mask,
            output=tmp_path / "out",
            overwrite=True,
            weights=False,
        )
    code, err = _cli(
        capsys,
        "toy-inpaint",
        str(tmp_path / "photo.png"),
        "--input",
        f"mask={mask}",
        "--weights",
        "none",
        "-o",
        str(tmp_path / "out"),
        "--overwrite",
    )
    assert code == 1 and "would replace its input" in err
    assert mask.read_bytes() == before


def test_a_folder_of_masks_pairs_with_a_folder_of_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        save_image(tmp_path / "photos" / f"{name}.png", _picture(6, 7))
        (tmp_path / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.zeros((6, 7), np.uint8))
    code, _ = _cli(
        capsys,
        "toy-inpaint",
        str(tmp_path / "photos"),
        "--input",
        f"mask={tmp_path / 'masks'}",
        "--weights",
        "none",
        "-o",
        str(tmp_path / "out"),
    )
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_bad_mask_among_many_skips_its_image_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, mask_size in (("a", (6, 7)), ("b", (3, 3))):
        save_image(tmp_path / "photos" / f"{name}.png", _picture(6, 7))
        (tmp_path / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.full(mask_size, 255, np.uint8))
    argv = [str(tmp_path / "photos"), "--input", f"mask={tmp_path / 'masks'}", "--weights", "none"]
    code, err = _cli(capsys, "toy-inpaint", *argv, "-o", str(tmp_path / "out"))
    assert code == 1 and [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    assert err.startswith("imgzoo: skipped: ") and "is 3x3, but must have the size of its image" in err
    assert err.splitlines()[-1] == "imgzoo: error: 1 of 2 inputs could not be read; the other 1 were written"


def test_the_tile_option_goes_with_named_inputs() -> None:
    image, mask = _picture(8, 9), np.zeros((8, 9), np.uint8)
    whole = imgzoo.run("toy-inpaint", image, mask=mask, weights=False, tile=0)
    np.testing.assert_allclose(whole, image, atol=1e-6)  # nothing masked: nothing changes


def test_tiling_may_not_be_declared_by_a_task_that_cannot_be_cut() -> None:
    uncuttable = type(
        "Uncuttable", (ToyInpaintTask,), {"name": "uncuttable", "tiling": imgzoo.Tiling(tile=32, overlap=8)}
    )
    _register(uncuttable)
    # Its declaration cannot tell: the class, imported on first use, is refused then.
    with pytest.raises(imgzoo.PluginError, match=r"tiling cuts the image alone"):
        imgzoo.load("uncuttable", weights=False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [],
            "task 'toy-inpaint' needs input 'mask' (1 where pixels are to be filled in): "
            "pass --input mask=FILE",
        ),
        (["--input", "mask=MASK", "--input", "hint=MASK"], "task 'toy-inpaint' has no input 'hint'"),
        (["--input", "mask=SMALL"], "input 'mask' (SMALL) is 3x3, but must have the size of its image"),
        (["--input", "mask=COLOUR"], "input 'mask' (COLOUR) has 3 channels, but the task takes 1"),
    ],
)
def test_bad_inputs_are_one_line_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    save_image(tmp_path / "photo.png", _picture(6, 7))
    files = {
        "MASK": np.zeros((6, 7), np.uint8),
        "SMALL": np.zeros((3, 3), np.uint8),
        "COLOUR": np.zeros((6, 7, 3), np.uint8),
    }
    for name, pixels in files.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), pixels)

    def located(text: str) -> str:
        for key in files:
            text = text.replace(key, str(tmp_path / f"{key}.png"))
        return text

    extra, message = [located(part) for part in extra], located(message)
    code, err = _cli(
        capsys,
        "toy-inpaint",
        str(tmp_path / "photo.png"),
        "--weights",
        "none",
        "-o",
        str(tmp_path / "o.png"),
        *extra,
    )
    assert code == 1 and err.count("\n") == 1 and err.startswith("imgzoo: error: ") and message in err
    assert not (tmp_path / "o.png").exists()


def test_an_input_may_not_share_a_name_with_a_config_field() -> None:
    class MaskConfig(ToyConfig):
        mask: float = 0.5

    clashing = type("Clashing", (ToyInpaintTask,), {"name": "clashing", "Config": MaskConfig})
    with pytest.warns(RuntimeWarning, match=r"input 'mask' has the name of a config field"):
        _register(clashing)
        imgzoo.list_tasks()
    assert "clashing" not in imgzoo.list_tasks()


# ── float map: toy-depth ────────────────────────────────────────────────────────────────────
def test_a_float_map_comes_back_unclipped_as_float32() -> None:
    dark = np.zeros((4, 5, 3), np.uint8)
    _register_exact_depth()
    depth = imgzoo.run("exact-depth", dark, weights=False)
    assert depth.dtype == np.float32 and depth.shape == (4, 5, 1)
    np.testing.assert_allclose(depth, -2.0)  # 4 * (0 - 0.5): far outside [0, 1]
    assert imgzoo.run("exact-depth", dark[..., 0], weights=False).shape == (4, 5)
    from_pil = imgzoo.run("exact-depth", PILImage.fromarray(dark), weights=False)
    assert isinstance(from_pil, np.ndarray) and from_pil.dtype == np.float32


def _register_exact_depth() -> None:
    class ExactDepth(ToyDepthTask):
        name = "exact-depth"

        def build_models(self):  # type: ignore[no-untyped-def]
            models = super().build_models()
            with torch.no_grad():
                models["model"].depth.weight.copy_(4 * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
                models["model"].depth.bias.fill_(-2.0)
            return models

    _register(ExactDepth)


def test_a_float_map_is_saved_as_npy_and_never_as_a_picture(tmp_path: Path) -> None:
    _register_exact_depth()
    picture = np.full((4, 5, 3), 255, np.uint8)
    imgzoo.run("exact-depth", picture, weights=False, precision="fp32", output=tmp_path / "depth.npy")
    np.testing.assert_allclose(np.load(tmp_path / "depth.npy"), 2.0, atol=1e-5)
    with pytest.raises(imgzoo.ZooError, match=r"cannot write .png files: use one of .npy"):
        imgzoo.run("exact-depth", picture, weights=False, output=tmp_path / "depth.png")


def test_a_float_map_runs_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_image(tmp_path / "photo.png", _picture(6, 7))
    code, _ = _cli(
        capsys, "toy-depth", str(tmp_path / "photo.png"), "--weights", "none", "-o", str(tmp_path / "maps")
    )
    assert code == 0 and np.load(tmp_path / "maps" / "photo.npy").shape == (6, 7, 1)


# ── task bugs ───────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"output_size": lambda self, h, w: (h, w)},
            r"returned an output of shape \(8, 10, 3\) .* output_size\(\) says 5x4",
        ),
        ({"output_channels": 1}, "returned 3 channels, but declares output_channels = 1"),
    ],
)
def test_an_output_that_breaks_the_declaration_is_a_task_bug(
    attributes: dict, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _register(type("Liar", (ToyUpscaleTask,), {"name": "liar", **attributes}))
    with pytest.raises(imgzoo.TaskBugError, match=r"task 'liar' " + message + ".*bug in the task's plugin"):
        imgzoo.run("liar", _picture(4, 5), weights=False)
    save_image(tmp_path / "p.png", _picture(4, 5))
    code, err = _cli(
        capsys, "liar", str(tmp_path / "p.png"), "--weights", "none", "-o", str(tmp_path / "o.png")
    )
    assert code == 1 and err.count("\n") == 1 and "task 'liar'" in err and "bug in the task's plugin" in err


def test_an_image_task_returning_two_channels_is_told_to_declare_a_map() -> None:
    class TwoChannels(InvertTask):
        name = "two-channels"

        def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
            return super().postprocess(output, image)[..., :2]

    _register(TwoChannels)
    with pytest.raises(imgzoo.TaskBugError, match="declares output_kind = 'map'"):
        imgzoo.run("two-channels", _picture(4, 5), weights=False)


# ── training ────────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("name", ["toy-inpaint", "toy-depth", "toy-upscale"])
def test_each_kind_trains_on_a_folder_and_its_weights_run(name: str, tmp_path: Path) -> None:
    for index in range(4):
        save_image(tmp_path / "data" / f"{index}.png", _picture(20, 20, seed=index))
    settings = dict(plugins.get_task_class(name).test_overrides)
    options = {"steps": 2, "batch_size": 2, "val_fraction": 0.5, "num_workers": 0, "progress": False}
    data, out = str(tmp_path / "data"), tmp_path / "run"
    result = imgzoo.train(name, data, out, device="cpu", precision="fp32", **settings, **options)
    assert result.weights is not None and all(np.isfinite(v) for v in result.metrics.values())
    pipeline = imgzoo.load(name, weights=result.weights, device="cpu")
    output = pipeline(_picture(8, 6), **testing.synthetic_inputs(pipeline.task, 8, 6))
    assert output.shape[:2] == pipeline.task.output_size(8, 6)
