"""Tiled inference: tiles cover the image, blend without seams, run in batches, and are refused
for tasks that cannot be tiled."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo.backends.pytorch import TorchBackend
from imgzoo.images import read_images
from imgzoo.pipeline import Pipeline, Request
from imgzoo.tiling import Tiling, blend_windows, plan_spans, run_tiled
from toy_tasks import SmoothTask, TiledToyTasksPlugin, UpscaleTask

TILING = SmoothTask.tiling
assert TILING is not None


@pytest.fixture
def tiled_tasks() -> Iterator[None]:
    name = imgzoo.register_plugin(TiledToyTasksPlugin(), name="tiled-toy-tasks")
    yield
    imgzoo.unregister_plugin(name)


def smooth_pipeline(**options: object) -> Pipeline:
    task = SmoothTask()
    torch.manual_seed(0)
    models = task.build_models()
    backend = TorchBackend(task, models, device=torch.device("cpu"), precision="fp32", weights=None)
    return Pipeline(task, models, backend, weights=None, **options)  # type: ignore[arg-type]


def whole_and_tiled(pipeline: Pipeline, image: np.ndarray, **call: int) -> tuple[np.ndarray, np.ndarray]:
    tiling = pipeline.tiling
    pipeline.tiling = None
    whole = pipeline(image, **call)
    pipeline.tiling = tiling
    return whole, pipeline(image, **call)


def count_forwards(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The input shape of every forward pass the pipeline's task makes from now on."""
    shapes: list[tuple[int, ...]] = []
    forward = pipeline.task.forward
    pipeline.bytes_per_pixel  # noqa: B018 (measured now: the measuring pass is not counted)

    def counting(models, inputs):  # type: ignore[no-untyped-def]
        shapes.append(tuple(inputs.shape))
        return forward(models, inputs)

    monkeypatch.setattr(pipeline.task, "forward", counting)
    return shapes


def cut_edges(length: int, tiling: Tiling) -> list[int]:
    """The first and last pixel of every tile edge that lies inside the image."""
    spans = plan_spans(length, tiling)
    return sorted({start for start, _ in spans[1:]} | {stop - 1 for _, stop in spans[:-1]})


# ── the plan ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "tiling",
    [
        Tiling(32, 8, halo=4, multiple=2),
        Tiling(32, 8),
        Tiling(40, 8, multiple=8),
        Tiling(26, 8, halo=4, multiple=2),
    ],
)
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_tiles_cover_every_length_and_their_weights_sum_to_one(tiling: Tiling, scale: int) -> None:
    for length in range(1, 300):
        spans = plan_spans(length, tiling)
        assert spans[0][0] == 0 and spans[-1][1] == length
        for (start, stop), (next_start, _) in itertools.pairwise(spans):
            assert stop - start <= tiling.tile and next_start % tiling.multiple == 0
            assert stop - next_start >= tiling.overlap
        total = np.zeros(scale * length)
        for (start, stop), window in zip(
            spans, blend_windows(spans, halo=tiling.halo, scale=scale), strict=True
        ):
            total[scale * start : scale * stop] += window
        np.testing.assert_allclose(total, 1.0, atol=1e-6, err_msg=f"length {length}")


def test_results_within_the_halo_of_a_cut_edge_get_no_weight() -> None:
    spans = plan_spans(100, TILING)
    windows = blend_windows(spans, halo=TILING.halo)
    (first_start, first_stop), (second_start, _) = spans[0], spans[1]
    assert (windows[0][first_stop - TILING.halo - first_start :] == 0).all()
    assert (windows[1][: TILING.halo] == 0).all()
    assert windows[0][0] == 1 and second_start > first_start


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"tile": 30, "overlap": 8, "multiple": 4}, "not a multiple of 4"),
        ({"tile": 64, "overlap": 6, "halo": 4}, "less than twice the halo"),
        ({"tile": 20, "overlap": 8}, "too small for an overlap of 8"),
        ({"tile": 32, "overlap": -1}, "whole number"),
    ],
)
def test_impossible_tilings_are_refused(arguments: dict[str, int], problem: str) -> None:
    with pytest.raises(imgzoo.TilingError, match=problem):
        Tiling(**arguments)


# ── tiled equals whole ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("height", "width", "channels"), [(100, 70, 3), (70, 100, 1), (33, 33, 3), (20, 90, 3)]
)
def test_tiled_output_equals_the_whole_image_output_also_at_tile_borders(
    height: int, width: int, channels: int, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = smooth_pipeline()
    image = rng.random((height, width, channels), dtype=np.float32)
    whole, tiled = whole_and_tiled(pipeline, image)
    assert tiled.shape == whole.shape == (height, width, channels)
    difference = np.abs(tiled - whole)
    assert difference.max() < 1e-5
    rows, columns = cut_edges(height, TILING), cut_edges(width, TILING)
    assert len(rows) + len(columns) > 0  # the image was really cut
    assert difference[rows].max(initial=0) < 1e-5 and difference[:, columns].max(initial=0) < 1e-5
    forwards = count_forwards(pipeline, monkeypatch)
    pipeline(image, batch_size=1)
    assert len(forwards) == len(plan_spans(height, TILING)) * len(plan_spans(width, TILING))


def test_without_enough_overlap_the_borders_show(rng: np.random.Generator) -> None:
    """The halo is what removes the seams: with none, the tiles' zero padding shows at cut edges."""
    pipeline = smooth_pipeline(tile=Tiling(tile=32, overlap=0, multiple=2))
    image = rng.random((100, 70, 3), dtype=np.float32)
    whole, tiled = whole_and_tiled(pipeline, image)
    difference = np.abs(tiled - whole)
    columns = cut_edges(70, Tiling(tile=32, overlap=0, multiple=2))
    assert difference[:, columns].max() > 1e-3


def test_tiles_run_in_batches(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = smooth_pipeline()
    forwards = count_forwards(pipeline, monkeypatch)
    output = pipeline(rng.random((100, 70, 3), dtype=np.float32), batch_size=4)
    tiles = len(plan_spans(100, TILING)) * len(plan_spans(70, TILING))
    assert sum(shape[0] for shape in forwards) == tiles
    assert len(forwards) < tiles and max(shape[0] for shape in forwards) == 4
    assert all(shape[2] <= 32 and shape[3] <= 32 for shape in forwards)
    assert output.shape == (100, 70, 3)


def test_images_up_to_the_tile_size_run_whole(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = smooth_pipeline()
    forwards = count_forwards(pipeline, monkeypatch)
    pipeline(rng.random((32, 20, 3), dtype=np.float32))
    assert forwards == [(1, 3, 32, 20)]


def test_scale_two_tiles_are_placed_and_blended_at_twice_the_size(rng: np.random.Generator) -> None:
    task = UpscaleTask()
    torch.manual_seed(0)
    model = task.build_models()["model"].eval()
    [image], _ = read_images(rng.random((70, 45, 3), dtype=np.float32))
    assert task.tiling is not None

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return model(batch).float()

    with torch.inference_mode():
        whole = task.postprocess(forward(task.preprocess(image.pixels))[0], image.pixels)
        tiled = run_tiled(
            task.tiling,
            image.height,
            image.width,
            scale=task.scale,
            crop=lambda rows, columns: image.region(rows, columns),
            preprocess=task.preprocess,
            forward=lambda tensors: [row for tensor in tensors for row in forward(tensor)],
            postprocess=task.postprocess,
            batch_size=3,
        )
    assert tiled.shape == whole.shape == (140, 90, 3)
    assert np.abs(tiled - whole).max() < 1e-5


def test_a_scale_two_task_runs_in_tiles_through_the_pipeline(
    rng: np.random.Generator, tiled_tasks: None
) -> None:
    image = rng.random((70, 45, 3), dtype=np.float32)
    pipeline = imgzoo.load("upscale", weights=False)
    tiled = pipeline(image)
    pipeline.tiling = None
    whole = pipeline(image)
    assert tiled.shape == whole.shape == (140, 90, 3)
    assert np.abs(tiled - whole).max() < 1e-5


def test_integer_images_are_converted_one_tile_at_a_time(rng: np.random.Generator) -> None:
    pipeline = smooth_pipeline()
    [image], _ = read_images(rng.integers(0, 256, (100, 70, 3), dtype=np.uint8))
    tiled = pipeline.run([Request(image)])[0].output
    assert image.stored.dtype == np.uint8  # the whole picture never became float
    pipeline.tiling = None
    np.testing.assert_allclose(tiled, pipeline.run([Request(image)])[0].output, atol=1e-5)


# ── choosing and refusing ────────────────────────────────────────────────────────────────────


@pytest.mark.usefixtures("tiled_tasks")
def test_tile_option_sets_or_disables_tiling(rng: np.random.Generator) -> None:
    assert imgzoo.load("smooth", weights=False).tiling == TILING
    assert imgzoo.load("smooth", weights=False, tile=0).tiling is None
    assert imgzoo.load("smooth", weights=False, tile=False).tiling is None
    assert imgzoo.load("smooth", weights=False, tile=47).tiling == Tiling(48, 8, halo=4, multiple=2)
    output = imgzoo.run("smooth", rng.random((50, 60), dtype=np.float32), weights=False, tile=40)
    assert output.shape == (50, 60)


@pytest.mark.usefixtures("toy_tasks")
@pytest.mark.parametrize("tile", [64, True, Tiling(32, 8)])
def test_tiling_a_task_that_does_not_allow_it_is_refused(tile: object) -> None:
    with pytest.raises(
        imgzoo.TilingError, match=r"task 'invert' cannot run in tiles .*run it without tile="
    ) as error:
        imgzoo.load("invert", weights=False, tile=tile)
    assert "\n" not in str(error.value)
    assert imgzoo.load("invert", weights=False, tile=0).tiling is None


@pytest.mark.usefixtures("tiled_tasks")
def test_a_tile_that_is_not_a_size_is_refused() -> None:
    with pytest.raises(imgzoo.TilingError, match="give a tile side in pixels"):
        imgzoo.load("smooth", weights=False, tile=-5)


def test_colorize_cannot_be_tiled() -> None:
    with pytest.raises(imgzoo.TilingError, match="'colorize' cannot run in tiles"):
        imgzoo.load("colorize", weights=False, tile=256)
