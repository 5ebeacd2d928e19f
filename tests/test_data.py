"""Data sources: folder discovery, unreadable-file skipping, paired and aligned data, paired
transforms, the train/validation split, data specs and the in-memory cache."""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import imgzoo
import imgzoo.data
from imgzoo.data import (
    AlignedPairs,
    CachedDataset,
    ImageFolder,
    PairedFolders,
    PairTransform,
    Sample,
    Subset,
    open_dataset,
    resize_short_side,
    train_val_split,
)
from imgzoo.data._files import read_rgb
from imgzoo.errors import DataError, InvalidImageError
from imgzoo.images import declared_size


def write_image(path: Path, width: int = 16, height: int = 12, value: int = 128) -> Path:
    """A flat gray image (every channel ``value``), so BGR/RGB order cannot matter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image")
    return path


def names(dataset: Any) -> list[str]:
    return [sample.name for sample in dataset]


# ── ImageFolder ───────────────────────────────────────────────────────────────────────────


def test_image_folder_finds_images_recursively_sorted_and_skips_hidden(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "deep" / "c.jpeg")
    write_image(tmp_path / "sub" / "B.JPG")
    write_image(tmp_path / "a.png", width=20, height=10)
    write_image(tmp_path / "sub" / "d.Webp")
    write_image(tmp_path / ".hidden.png")
    write_image(tmp_path / ".cache" / "x.png")
    (tmp_path / "notes.txt").write_text("not an image")

    dataset = ImageFolder(tmp_path)

    assert names(dataset) == ["a.png", "sub/B.JPG", "sub/d.Webp", "sub/deep/c.jpeg"]
    first = dataset[0]
    assert first.image.shape == (10, 20, 3) and first.image.dtype == np.float32
    assert first.target is None
    assert np.allclose(first.image, 128 / 255)


def test_image_folder_counts_and_reports_folders_it_cannot_search(
    tmp_path: Path, deny_reading: Callable[[Path], None]
) -> None:
    for name in ("a.png", "sub/b.png", "locked/c.png"):
        write_image(tmp_path / name)
    deny_reading(tmp_path / "locked")
    (tmp_path / "sub" / "back").symlink_to(tmp_path)  # a loop
    (tmp_path / "self").symlink_to(tmp_path / "self")  # a link that never resolves
    with pytest.warns(UserWarning, match="3 folder") as caught:
        folder = ImageFolder(tmp_path)
    assert names(folder) == ["a.png", "sub/b.png"]
    message = str(caught[0].message)
    assert "locked cannot be read: Permission denied" in message
    assert (
        "back links to a folder searched already" in message
        and "self is a link that cannot be followed" in message
    )


def test_image_folder_extensions_option(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.jpg")
    assert names(ImageFolder(tmp_path, extensions=["PNG"])) == ["a.png"]


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("missing", "does not exist"),
        ("file", "is a file"),
        ("empty", r"no images found under .*searched recursively for \.jpg"),
        ("only_other_files", "2 other file"),
    ],
)
def test_image_folder_without_images_raises_a_useful_data_error(
    tmp_path: Path, layout: str, expected: str
) -> None:
    root = tmp_path / "photos"
    if layout == "file":
        root.write_text("x")
    elif layout != "missing":
        root.mkdir()
    if layout == "only_other_files":
        (root / "readme.txt").write_text("x")
        (root / "labels.csv").write_text("x")
    with pytest.raises(DataError, match=expected) as caught:
        ImageFolder(root)
    assert str(root) in str(caught.value)
    assert caught.value.path == root


def test_unreadable_image_is_skipped_counted_and_warned_once(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    bad = write_garbage(tmp_path / "b.png")
    write_image(tmp_path / "c.png")
    dataset = ImageFolder(tmp_path)

    with pytest.warns(UserWarning, match="b.png"):
        assert names(dataset) == ["a.png", "c.png", "c.png"]  # b is replaced by the next readable file
    assert dataset.skipped == 1
    assert dataset.bad_files == [bad]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning for the same file would fail here
        assert dataset[1].name == "c.png"
    assert dataset.skipped == 2
    assert dataset.bad_files == [bad]


def test_unreadable_last_image_wraps_around_to_the_first(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    write_garbage(tmp_path / "z.png")
    with pytest.warns(UserWarning):
        assert ImageFolder(tmp_path)[-1].name == "a.png"


def test_all_unreadable_images_raise_data_error(tmp_path: Path) -> None:
    write_garbage(tmp_path / "a.png")
    write_garbage(tmp_path / "b.jpg")
    dataset = ImageFolder(tmp_path)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="none of the 2 samples"):
        dataset[0]


def test_index_out_of_range_raises_index_error(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    with pytest.raises(IndexError):
        ImageFolder(tmp_path)[1]


# ── header sizes ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_size_matches_the_decoded_size(tmp_path: Path, suffix: str) -> None:
    path = write_image(tmp_path / f"x{suffix}", width=20, height=12)
    assert declared_size(path) == (12, 20)


def test_header_size_is_the_shown_size_of_a_rotated_jpeg(tmp_path: Path) -> None:
    path = write_rotated_jpeg(tmp_path / "r.jpg", width=20, height=12)
    assert declared_size(path) == (20, 12)
    assert read_rgb(path).shape[:2] == (20, 12)


def test_a_file_whose_size_cannot_be_read_from_its_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="format whose size can be read before decoding"):
        declared_size(write_garbage(tmp_path / "bad.png"))


def write_rotated_jpeg(path: Path, width: int, height: int) -> Path:
    """A JPEG stored ``width`` x ``height`` whose EXIF orientation (6) turns it by 90°."""
    ok, encoded = cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))
    assert ok
    directory = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + directory
    segment = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    data = encoded.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:2] + segment + data[2:])
    return path


# ── PairedFolders ─────────────────────────────────────────────────────────────────────────


def test_paired_folders_match_partners_by_relative_path_without_extension(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png", value=10)
    write_image(tmp_path / "A" / "sub" / "y.png", value=10)
    write_image(tmp_path / "B" / "x.jpg", value=240)
    write_image(tmp_path / "B" / "sub" / "y.bmp", value=240)

    dataset = PairedFolders(tmp_path)

    assert names(dataset) == ["sub/y.png", "x.png"]
    sample = dataset[1]
    assert sample.target is not None
    assert sample.image.shape == sample.target.shape == (12, 16, 3)
    assert np.allclose(sample.image, 10 / 255, atol=0.01)
    assert np.allclose(sample.target, 240 / 255, atol=0.01)


def test_paired_folders_missing_partner_names_the_lonely_files(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png")
    write_image(tmp_path / "B" / "x.png")
    write_image(tmp_path / "B" / "only_b.png")
    for number in range(7):
        write_image(tmp_path / "A" / f"only_a{number}.png")
    with pytest.raises(DataError) as caught:
        PairedFolders(tmp_path)
    message = str(caught.value)
    assert "7 file(s) in A/ have no partner in B/" in message
    assert "A/only_a0.png" in message and "and 2 more" in message and "A/only_a6.png" not in message
    assert "1 file(s) in B/ have no partner in A/: B/only_b.png" in message


def test_paired_folders_of_different_sizes_raise_before_training(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png", width=16, height=12)
    write_image(tmp_path / "B" / "x.jpg", width=24, height=12)
    with pytest.raises(DataError, match=r"A/x\.png is 16x12 but its partner .*B/x\.jpg is 24x12"):
        PairedFolders(tmp_path)


def test_paired_folders_honour_exif_rotation_like_the_decoder(tmp_path: Path) -> None:
    write_rotated_jpeg(tmp_path / "A" / "x.jpg", width=20, height=12)
    write_image(tmp_path / "B" / "x.png", width=12, height=20)
    sample = PairedFolders(tmp_path)[0]
    assert sample.target is not None
    assert sample.image.shape == sample.target.shape == (20, 12, 3)


def test_paired_folders_need_both_subfolders(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png")
    with pytest.raises(DataError, match="B is missing"):
        PairedFolders(tmp_path)


def test_paired_folders_reject_ambiguous_partners(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png")
    write_image(tmp_path / "A" / "x.jpg")
    write_image(tmp_path / "B" / "x.png")
    with pytest.raises(DataError, match="both be paired as 'x'"):
        PairedFolders(tmp_path)


def write_gray(path: Path, width: int, height: int, value: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width), value, np.uint8))
    return path


def test_paired_folders_at_a_scale_carry_named_folders_as_inputs(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png", width=8, height=6, value=10)
    write_image(tmp_path / "B" / "x.png", width=16, height=12, value=240)
    write_gray(tmp_path / "mask" / "x.png", width=8, height=6, value=255)
    write_image(tmp_path / "reference" / "x.jpg", width=16, height=12, value=100)

    dataset = PairedFolders(tmp_path, scale=2)

    assert dataset.input_names == ["mask", "reference"]
    sample = dataset[0]
    assert sample.target is not None
    assert sample.image.shape == (6, 8, 3) and sample.target.shape == (12, 16, 3)
    assert sorted(sample.inputs) == ["mask", "reference"]
    assert sample.inputs["mask"].shape == (6, 8, 1) and sample.inputs["mask"].dtype == np.float32
    assert np.allclose(sample.inputs["mask"], 1.0)
    assert sample.inputs["reference"].shape == (12, 16, 3)
    assert np.allclose(sample.inputs["reference"], 100 / 255, atol=0.02)


def test_paired_folders_whose_sizes_disagree_with_the_scale_raise_when_opened(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png", width=8, height=6)
    write_image(tmp_path / "B" / "x.png", width=24, height=18)
    with pytest.raises(DataError) as caught:
        PairedFolders(tmp_path, scale=2)
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(r"A/x\.png is 8x6 but its partner .*B/x\.png is 24x18", message)
    assert "2 times larger per side" in message and "16x12" in message
    # The same folder is right for a task three times larger.
    assert len(PairedFolders(tmp_path, scale=3)) == 1


def test_paired_folders_check_named_folders_for_partners_and_sizes(tmp_path: Path) -> None:
    for key in ("x", "y"):
        write_image(tmp_path / "A" / f"{key}.png", width=8, height=6)
        write_image(tmp_path / "B" / f"{key}.png", width=16, height=12)
    write_gray(tmp_path / "mask" / "x.png", width=8, height=6)
    with pytest.raises(DataError, match=r"1 file\(s\) in A/ have no partner in mask/: A/y\.png.*named input"):
        PairedFolders(tmp_path, scale=2)

    write_gray(tmp_path / "mask" / "y.png", width=5, height=5)
    with pytest.raises(DataError) as caught:
        PairedFolders(tmp_path, scale=2)
    assert re.search(
        r"mask/y\.png is 5x5, but a file in mask/ must be the size of its A/ partner \(8x6\) "
        r"or of its B/ partner \(16x12\)",
        str(caught.value),
    )


def test_data_specs_open_paired_folders_at_the_task_scale(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "x.png", width=8, height=6)
    write_image(tmp_path / "B" / "x.png", width=16, height=12)
    for spec in (f"paired:{tmp_path}", str(tmp_path)):
        dataset = open_dataset(spec, resolution=16, scale=2)
        assert isinstance(dataset, PairedFolders) and dataset.scale == 2
        with pytest.raises(DataError, match="same size"):
            open_dataset(spec, resolution=16)
    write_side_by_side(tmp_path / "aligned" / "pair.png", 0, 255)
    with pytest.raises(DataError, match=r"2 times larger.*paired:DIR"):
        open_dataset(f"aligned:{tmp_path / 'aligned'}", resolution=16, scale=2)


# ── AlignedPairs ──────────────────────────────────────────────────────────────────────────


def write_side_by_side(path: Path, left: int, right: int, height: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((height, 2 * height, 3), left, np.uint8)
    pixels[:, height:] = right
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.mark.parametrize(("direction", "image_value", "target_value"), [("AtoB", 30, 220), ("BtoA", 220, 30)])
def test_aligned_pairs_split_at_the_middle_column(
    tmp_path: Path, direction: Any, image_value: int, target_value: int
) -> None:
    write_side_by_side(tmp_path / "pair.png", left=30, right=220)
    sample = AlignedPairs(tmp_path, direction=direction)[0]
    assert sample.target is not None
    assert sample.image.shape == sample.target.shape == (12, 12, 3)
    assert np.allclose(sample.image, image_value / 255)
    assert np.allclose(sample.target, target_value / 255)
    assert sample.name == "pair.png"


@pytest.mark.parametrize(("width", "height"), [(25, 12), (12, 12)])
def test_aligned_pairs_reject_files_that_are_not_side_by_side(
    tmp_path: Path, width: int, height: int
) -> None:
    write_image(tmp_path / "x.png", width=width, height=height)
    with pytest.raises(DataError, match=rf"x\.png is {width}x{height}.*side by side"):
        AlignedPairs(tmp_path)


def test_aligned_pairs_reject_an_unknown_direction(tmp_path: Path) -> None:
    write_side_by_side(tmp_path / "pair.png", 0, 255)
    with pytest.raises(DataError, match="AtoB"):
        AlignedPairs(tmp_path, direction="sideways")  # type: ignore[arg-type]


# ── PairTransform ─────────────────────────────────────────────────────────────────────────


def random_sample(height: int = 30, width: int = 40, *, with_target: bool = True) -> Sample:
    image = np.random.default_rng(1).random((height, width, 3), dtype=np.float32)
    return Sample(image=image, target=image.copy() if with_target else None, name="s")


ALL_AUGMENTATIONS: dict[str, Any] = {"random_crop": True, "flip": True, "affine": True, "jitter_resize": 28}


def test_transform_applies_the_same_geometry_to_image_and_target() -> None:
    transform = PairTransform(24, **ALL_AUGMENTATIONS)
    for seed in range(4):
        out = transform(random_sample(), np.random.default_rng(seed))
        assert out.image.shape == (24, 24, 3) and out.image.dtype == np.float32
        assert out.image.flags.c_contiguous
        assert out.target is not None
        np.testing.assert_array_equal(out.image, out.target)


def test_transform_is_deterministic_for_a_seed() -> None:
    transform = PairTransform(24, **ALL_AUGMENTATIONS)
    outputs = [transform(random_sample(), np.random.default_rng(seed)).image for seed in (7, 7, 8)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])


def test_transform_without_options_is_a_centre_crop_after_short_side_resize() -> None:
    columns = np.tile(np.arange(16, dtype=np.float32) / 16, (8, 1))[..., None].repeat(3, axis=2)
    out = PairTransform(8)(Sample(image=columns), np.random.default_rng(0))
    assert out.target is None
    np.testing.assert_array_equal(out.image, columns[:, 4:12])


def test_resize_short_side_keeps_the_aspect_ratio() -> None:
    assert resize_short_side(np.zeros((20, 40, 3), np.float32), 10).shape == (10, 20, 3)
    assert resize_short_side(np.zeros((30, 12, 3), np.float32), 24).shape == (60, 24, 3)
    assert resize_short_side(np.zeros((20, 40, 1), np.float32), 10).shape == (10, 20, 1)


def test_transform_rejects_mismatched_sides_and_bad_sizes() -> None:
    sample = Sample(image=np.zeros((8, 8, 3), np.float32), target=np.zeros((8, 9, 3), np.float32))
    with pytest.raises(DataError, match="same size"):
        PairTransform(4)(sample, np.random.default_rng(0))
    with pytest.raises(ValueError, match="jitter_resize"):
        PairTransform(32, jitter_resize=16)


def coordinate_picture(height: int, width: int, factor: int = 1, channels: int = 3) -> np.ndarray:
    """A picture ``factor`` times larger per side than a ``height`` x ``width`` image, each pixel
    holding where its centre lies on the image's grid: (row, column, row + column)."""
    rows = (np.arange(height * factor) + 0.5) / factor
    columns = (np.arange(width * factor) + 0.5) / factor
    grid_rows, grid_columns = np.meshgrid(rows, columns, indexing="ij")
    return np.stack([grid_rows, grid_columns, grid_rows + grid_columns], axis=2)[..., :channels].astype(
        np.float32
    )


def shrink(picture: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: a larger picture seen on a smaller one's grid."""
    height, width, channels = picture.shape
    return picture.reshape(height // factor, factor, width // factor, factor, channels).mean(axis=(1, 3))


def coordinate_sample(height: int, width: int, scale: int) -> Sample:
    return Sample(
        image=coordinate_picture(height, width),
        target=coordinate_picture(height, width, scale),
        name="grid",
        inputs={
            "mask": coordinate_picture(height, width, channels=1),
            "reference": coordinate_picture(height, width, scale),
        },
    )


@pytest.mark.parametrize("crop", ["native", "resize"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_transform_crops_and_flips_every_picture_at_the_same_place(scale: int, crop: Any) -> None:
    transform = PairTransform(16, random_crop=True, flip=True, crop=crop, scale=scale)
    sample = coordinate_sample(32, 48, scale)
    corners, flips = set(), set()
    for seed in range(8):
        out = transform(sample, np.random.default_rng(seed))
        side = 16 // scale
        assert out.target is not None
        assert out.image.shape == (side, side, 3) and out.target.shape == (16, 16, 3)
        assert out.inputs["mask"].shape == (side, side, 1) and out.inputs["reference"].shape == (16, 16, 3)
        np.testing.assert_allclose(shrink(out.target, scale), out.image, atol=1e-4)
        np.testing.assert_allclose(shrink(out.inputs["reference"], scale), out.image, atol=1e-4)
        np.testing.assert_array_equal(out.inputs["mask"], out.image[..., :1])
        corners.add((float(out.image[..., 0].min()), float(out.image[..., 1].min())))
        flips.add(bool(out.image[0, 0, 1] > out.image[0, -1, 1]))
    assert len(corners) > 1 and flips == {True, False}


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_transform_turns_every_picture_about_the_same_point(scale: int) -> None:
    transform = PairTransform(16, affine=True, crop="native", scale=scale)
    sample = coordinate_sample(40, 40, scale)
    unturned = PairTransform(16, crop="native", scale=scale)(sample, np.random.default_rng(0))
    for seed in range(4):
        out = transform(sample, np.random.default_rng(seed))
        assert out.target is not None
        assert not np.allclose(out.image, unturned.image, atol=0.01)
        # Linear interpolation of a linear ramp is exact up to OpenCV's 1/32-pixel weights.
        np.testing.assert_allclose(shrink(out.target, scale), out.image, atol=0.05)
        np.testing.assert_allclose(shrink(out.inputs["reference"], scale), out.image, atol=0.05)
        np.testing.assert_array_equal(out.inputs["mask"], out.image[..., :1])


def test_native_crops_of_a_single_picture_are_cut_from_full_resolution() -> None:
    picture = coordinate_picture(40, 60)
    transform = PairTransform(16, random_crop=True, crop="native")
    for seed in range(4):
        out = transform(Sample(image=picture), np.random.default_rng(seed))
        top, left = int(out.image[0, 0, 0]), int(out.image[0, 0, 1])
        np.testing.assert_array_equal(out.image, picture[top : top + 16, left : left + 16])


def test_native_crops_enlarge_a_picture_smaller_than_the_crop_like_the_resize_policy() -> None:
    small = random_sample(10, 14, with_target=False)
    native = PairTransform(16, crop="native")(small, np.random.default_rng(0))
    resized = PairTransform(16)(small, np.random.default_rng(0))
    assert native.image.shape == (16, 16, 3)
    np.testing.assert_array_equal(native.image, resized.image)


def test_transform_rejects_pictures_that_disagree_with_the_scale() -> None:
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(
        DataError, match=r"'s': image is 8x8 but target is 24x24; the target must be 2 times larger"
    ):
        PairTransform(16, scale=2)(
            Sample(image=image, target=np.zeros((24, 24, 3), np.float32), name="s"), np.random.default_rng(0)
        )
    odd_mask = Sample(
        image=image,
        target=np.zeros((16, 16, 3), np.float32),
        inputs={"mask": np.zeros((9, 9, 1), np.float32)},
    )
    with pytest.raises(
        DataError, match=r"input 'mask' is 9x9.*image \(8x8\) or of the target \(16x16, scale 2\)"
    ):
        PairTransform(16, scale=2)(odd_mask, np.random.default_rng(0))
    with pytest.raises(DataError, match="image_size divisible by 4"):
        PairTransform(18, scale=4)(
            Sample(image=image, target=np.zeros((32, 32, 3), np.float32)), np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="crop='native'"):
        PairTransform(16, crop="native", jitter_resize=20)
    with pytest.raises(ValueError, match="'resize', 'native'"):
        PairTransform(16, crop="stretch")  # type: ignore[arg-type]


def test_evaluation_transform_keeps_the_sizing_and_drops_the_randomness() -> None:
    transform = PairTransform(16, random_crop=True, flip=True, affine=True, crop="native", scale=2)
    evaluation = transform.for_evaluation()
    assert (evaluation.crop, evaluation.scale, evaluation.size) == ("native", 2, 16)
    assert not (evaluation.random_crop or evaluation.flip or evaluation.affine)


# ── split ─────────────────────────────────────────────────────────────────────────────────


class CountingDataset:
    """Ten tiny samples; counts how often each index is decoded."""

    def __init__(self, count: int = 10) -> None:
        self.count = count
        self.calls: dict[int, int] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.count:
            raise IndexError(index)
        self.calls[index] = self.calls.get(index, 0) + 1
        return Sample(image=np.full((2, 2, 3), index / self.count, np.float32), name=str(index))


def test_split_is_seeded_disjoint_and_covering() -> None:
    dataset = CountingDataset(20)
    train, val = train_val_split(dataset, val_fraction=0.25, seed=3)
    assert isinstance(train, Subset)
    assert len(val) == 5 and len(train) == 15
    assert set(train.indices).isdisjoint(val.indices)
    assert sorted(train.indices + val.indices) == list(range(20))
    assert train_val_split(dataset, val_fraction=0.25, seed=3)[1].indices == val.indices
    assert train_val_split(dataset, val_fraction=0.25, seed=4)[1].indices != val.indices
    assert [sample.name for sample in val] == [str(index) for index in val.indices]


@pytest.mark.parametrize(
    ("count", "fraction", "expected_val"),
    [(10, 0.1, 1), (2, 0.01, 1), (10, 0.0, 0), (1, 0.5, 0), (3, 0.9, 2)],
)
def test_split_sizes(count: int, fraction: float, expected_val: int) -> None:
    train, val = train_val_split(CountingDataset(count), val_fraction=fraction)
    assert (len(train), len(val)) == (count - expected_val, expected_val)


# ── CachedDataset ─────────────────────────────────────────────────────────────────────────


def test_cached_dataset_decodes_each_sample_once() -> None:
    inner = CountingDataset(3)
    cached = CachedDataset(inner)
    first_pass = list(cached)
    first_pass[0].image[:] = 1.0  # editing a returned sample must not reach the cache
    second_pass = list(cached)
    assert inner.calls == {0: 1, 1: 1, 2: 1}
    assert [sample.name for sample in second_pass] == ["0", "1", "2"]
    for index, sample in enumerate(second_pass):
        np.testing.assert_array_equal(sample.image, inner[index].image)


def test_cached_dataset_copies_named_inputs() -> None:
    mask = np.zeros((4, 4, 1), np.float32)
    cached = CachedDataset([Sample(image=np.zeros((4, 4, 3), np.float32), inputs={"mask": mask})])
    cached[0].inputs["mask"][:] = 1.0
    np.testing.assert_array_equal(cached[0].inputs["mask"], mask)


# ── open_dataset ──────────────────────────────────────────────────────────────────────────


def make_factory(calls: list[dict[str, Any]]) -> Any:
    def minifigs(*, resolution: int, seed: int, n: int = 10, scale: float = 1.0, color: bool = True) -> Any:
        calls.append({"resolution": resolution, "seed": seed, "n": n, "scale": scale, "color": color})
        return CountingDataset(n)

    return minifigs


def test_spec_detects_folders_paired_folders_and_forced_kinds(tmp_path: Path) -> None:
    write_image(tmp_path / "plain" / "x.png")
    write_image(tmp_path / "pairs" / "A" / "x.png")
    write_image(tmp_path / "pairs" / "B" / "x.png")
    write_side_by_side(tmp_path / "aligned" / "x.png", 0, 255)

    assert isinstance(open_dataset(str(tmp_path / "plain"), resolution=64), ImageFolder)
    assert isinstance(open_dataset(str(tmp_path / "pairs"), resolution=64), PairedFolders)
    assert isinstance(open_dataset(f"folder:{tmp_path / 'pairs'}", resolution=64), ImageFolder)
    assert isinstance(open_dataset(f"paired:{tmp_path / 'pairs'}", resolution=64), PairedFolders)
    assert isinstance(open_dataset(f"aligned:{tmp_path / 'aligned'}", resolution=64), AlignedPairs)


def test_spec_name_with_options_calls_the_factory(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    factories = {"minifigs": make_factory(calls)}
    dataset = open_dataset(
        "minifigs:n=5,seed=3,scale=0.5,color=false", resolution=64, seed=1, factories=factories
    )
    assert len(dataset) == 5
    assert calls == [{"resolution": 64, "seed": 3, "n": 5, "scale": 0.5, "color": False}]
    open_dataset("minifigs", resolution=32, seed=9, factories=factories)
    assert calls[-1] == {"resolution": 32, "seed": 9, "n": 10, "scale": 1.0, "color": True}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("minifig", r"neither an existing folder nor a registered dataset: did you mean 'minifigs'\?"),
        ("minifigs:n", "expected key=value"),
        ("minifigs:n=1,n=2", "given twice"),
        ("minifigs:resolution=8", "comes from the task"),
        ("minifigs:size=8", "it accepts: n, scale, color"),
        ("./no/such/folder", "does not exist"),
        ("folder:", "needs a folder"),
    ],
)
def test_spec_errors_say_what_is_wrong(spec: str, expected: str) -> None:
    factories = {"minifigs": make_factory([]), "facades": make_factory([])}
    with pytest.raises(DataError, match=expected):
        open_dataset(spec, resolution=64, factories=factories)


class TinyDatasetPlugin:
    @imgzoo.hookimpl
    def register_datasets(self, register: Any) -> None:
        register("tinyset", lambda *, resolution, seed, n=3: CountingDataset(n), description="test data")


def test_spec_finds_datasets_registered_by_plugins() -> None:
    name = imgzoo.register_plugin(TinyDatasetPlugin(), name="tiny-dataset")
    try:
        assert len(open_dataset("tinyset:n=2", resolution=8)) == 2
        with pytest.raises(DataError, match="did you mean 'tinyset'"):
            open_dataset("tinyst", resolution=8)
    finally:
        imgzoo.unregister_plugin(name)


def test_spec_naming_a_file_is_an_error(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.png")
    with pytest.raises(DataError, match="is a file"):
        open_dataset(str(path), resolution=64, factories={})


def test_public_names() -> None:
    assert sorted(imgzoo.data.__all__) == sorted(
        [
            "IMAGE_EXTENSIONS",
            "AlignedPairs",
            "CachedDataset",
            "Dataset",
            "DatasetFactory",
            "ImageFolder",
            "PairTransform",
            "PairedFolders",
            "Sample",
            "Subset",
            "open_dataset",
            "resize_short_side",
            "train_val_split",
        ]
    )
    for name in imgzoo.data.__all__:
        assert hasattr(imgzoo.data, name)


def test_the_resolution_hint_names_a_setting_that_works() -> None:
    from imgzoo.config import build_config, parse_assignments

    with pytest.raises(DataError) as caught:
        open_dataset("minifigs:resolution=96", resolution=64)
    suggested = re.search(r"--set (\S+)\)", str(caught.value))

    assert suggested is not None
    overrides = parse_assignments([suggested[1]], task="colorize")
    config = build_config(imgzoo.TaskConfig, task="colorize", overrides=overrides)
    assert config.model_dump() == {**imgzoo.TaskConfig().model_dump(), "image_size": 96}
