"""The ``minifigs`` plugin: the procedural pictures, the dataset over them and the plugin hook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pluggy
import pytest

import imgzoo.hookspecs
import imgzoo_minifigs
from imgzoo.data.base import Dataset, Sample
from imgzoo_minifigs.dataset import MinifigsDataset
from imgzoo_minifigs.generator import PALETTE, render_minifig, render_minifig_with_mask

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------


def test_same_seed_and_index_give_the_same_picture() -> None:
    np.testing.assert_array_equal(render_minifig(7, seed=3, size=64), render_minifig(7, seed=3, size=64))


def test_other_index_or_seed_gives_another_picture() -> None:
    picture = render_minifig(7, seed=3, size=64).astype(np.int16)
    for other in (render_minifig(8, seed=3, size=64), render_minifig(7, seed=4, size=64)):
        assert np.abs(picture - other).mean() > 10


@pytest.mark.parametrize("size", [1, 8, 33, 100, 257])
def test_pictures_are_square_uint8_rgb_of_the_asked_size(size: int) -> None:
    picture = render_minifig(5, size=size)
    assert picture.shape == (size, size, 3)
    assert picture.dtype == np.uint8


def test_the_figure_does_not_depend_on_the_size() -> None:
    # The same scene drawn at 512 and shrunk to 128 matches the 128 drawing up to line widths,
    # blur radii and grain (measured: 1.6 to 4.7 grey levels on average); two different
    # pictures differ by about 60.
    for index in range(3):
        large = cv2.resize(render_minifig(index, size=512), (128, 128), interpolation=cv2.INTER_AREA)
        small = render_minifig(index, size=128)
        assert np.abs(large.astype(np.int16) - small).mean() < 8


def test_negative_index_or_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="index"):
        render_minifig(-1)
    with pytest.raises(ValueError, match="seed"):
        render_minifig(0, seed=-2)


def _colorfulness(pixels: np.ndarray) -> float:
    """Hasler and Süsstrunk's colorfulness of an Nx3 array of RGB pixels (0..255)."""
    red, green, blue = pixels.astype(np.float64).T
    red_green, yellow_blue = red - green, (red + green) / 2 - blue
    spread = np.hypot(red_green.std(), yellow_blue.std())
    return float(spread + 0.3 * np.hypot(red_green.mean(), yellow_blue.mean()))


def test_pictures_are_colourful_with_the_colour_on_the_figure() -> None:
    whole, figures, backgrounds = [], [], []
    for index in range(20):
        picture, mask = render_minifig_with_mask(index, size=64)
        whole.append(_colorfulness(picture.reshape(-1, 3)))
        figures.append(_colorfulness(picture[mask]))
        backgrounds.append(_colorfulness(picture[~mask]))
    # Hasler and Süsstrunk rate 45 "averagely colourful" and 59 "quite colourful"; these pictures
    # measure about 60 (seeds 0, 1, 2, 7), figures about 100 and backgrounds about 25.
    assert np.mean(whole) > 45
    assert np.mean(figures) > 2 * np.mean(backgrounds)


def test_fifty_pictures_show_many_figure_colours_and_backgrounds() -> None:
    palette = np.array(list(PALETTE.values()), dtype=np.float64)
    figure_colours, backgrounds = set(), set()
    for index in range(50):
        picture, mask = render_minifig_with_mask(index, seed=1, size=48)
        figure = picture[mask].astype(np.float64)
        nearest = np.argmin(((figure[:, None, :] - palette[None]) ** 2).sum(axis=-1), axis=1)
        figure_colours.add(int(np.bincount(nearest).argmax()))
        backgrounds.add(tuple(int(level) for level in np.median(picture[~mask], axis=0) // 32))
    # Measured over seeds 0 to 3: 17 to 20 dominant figure colours, 27 to 31 background bins.
    assert len(figure_colours) >= 10
    assert len(backgrounds) >= 15


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


def test_dataset_contract() -> None:
    dataset = MinifigsDataset(resolution=24, seed=2, n=3)
    assert isinstance(dataset, Dataset)
    assert len(dataset) == 3
    samples = list(dataset)
    assert [sample.name for sample in samples] == ["minifig-2-0", "minifig-2-1", "minifig-2-2"]
    sample = samples[1]
    assert isinstance(sample, Sample)
    assert sample.image.shape == (24, 24, 3)
    assert sample.image.dtype == np.float32
    assert sample.image.min() >= 0.0 and sample.image.max() <= 1.0
    assert sample.target is None
    np.testing.assert_array_equal(
        np.round(sample.image * 255), render_minifig(1, seed=2, size=24).astype(np.float32)
    )
    assert repr(dataset) == "MinifigsDataset(resolution=24, seed=2, n=3)"


@pytest.mark.parametrize("index", [3, -1, 10**9])
def test_dataset_index_out_of_range(index: int) -> None:
    with pytest.raises(IndexError):
        MinifigsDataset(resolution=8, n=3)[index]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"resolution": 4}, "resolution must be >= 8"),
        ({"n": 0}, "n must be >= 1"),
        ({"n": 2.5}, "n must be an integer"),
    ],
)
def test_dataset_rejects_bad_arguments(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MinifigsDataset(**arguments)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Plugin
# --------------------------------------------------------------------------------------------


def test_plugin_registers_the_minifigs_dataset() -> None:
    manager = pluggy.PluginManager(imgzoo.hookspecs.PROJECT_NAME)
    manager.add_hookspecs(imgzoo.hookspecs)
    manager.register(imgzoo_minifigs)
    manager.check_pending()
    registered: list[tuple[str, object, str]] = []
    manager.hook.register_datasets(
        register=lambda name, factory, description="": registered.append((name, factory, description))
    )
    [(name, factory, description)] = registered
    assert name == "minifigs"
    assert factory is imgzoo_minifigs.make_dataset
    assert description


def test_make_dataset_reads_options_given_as_strings() -> None:
    dataset = imgzoo_minifigs.make_dataset(resolution="16", seed="3", n="5")
    assert (len(dataset), dataset.resolution, dataset.seed) == (5, 16, 3)
    assert len(imgzoo_minifigs.make_dataset(resolution=16)) == 10_000


def test_make_dataset_names_unknown_options_and_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) colour, size; accepted: n "):
        imgzoo_minifigs.make_dataset(resolution=16, size="3", colour="red")
    with pytest.raises(ValueError, match="option n must be an integer, got 'many'"):
        imgzoo_minifigs.make_dataset(resolution=16, n="many")


def test_importing_the_plugin_is_cheap() -> None:
    check = (
        "import sys, imgzoo_minifigs; "
        "assert 'torch' not in sys.modules, 'torch'; "
        "assert 'imgzoo_minifigs.generator' not in sys.modules, 'generator'"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "core"), str(REPO / "plugins")])}
    result = subprocess.run([sys.executable, "-c", check], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
