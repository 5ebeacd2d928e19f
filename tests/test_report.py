"""The pictures a run leaves for people: the loss chart and the sample grids, readable whatever
the length of the run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from imgzoo.images import save_image
from imgzoo.training import train
from imgzoo.training.report import draw_loss_curve, grid_shape, save_grid


def colour_at(image: np.ndarray, point: tuple[int, int]) -> tuple[int, ...]:
    x, y = point
    return tuple(int(channel) for channel in image[y, x])


def read_rgb(path: Path) -> np.ndarray:
    picture = cv2.imread(str(path))
    assert picture is not None, path
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def test_a_single_point_is_marked_between_distinct_labels() -> None:
    chart = draw_loss_curve([(3, {"loss": 0.25})])
    assert chart.markers
    (point,) = chart.points["loss"]
    # The marker is a filled dot of the line's colour: its centre and 3 pixels around it.
    around = [(point[0] + dx, point[1] + dy) for dx, dy in ((0, 0), (3, 0), (-3, 0), (0, 3), (0, -3))]
    assert len({colour_at(chart.image, p) for p in around}) == 1
    assert colour_at(chart.image, point) != (255, 255, 255)
    assert len(set(chart.y_labels)) == 3
    low, middle, high = map(float, chart.y_labels)
    assert low < 0.25 < high and middle == pytest.approx(0.25)


def test_a_flat_loss_gets_a_range_around_its_value() -> None:
    chart = draw_loss_curve([(1, {"loss": 0.5}), (2, {"loss": 0.5}), (3, {"loss": 0.5})])
    low, middle, high = map(float, chart.y_labels)
    assert low < middle == 0.5 < high
    assert draw_loss_curve([(1, {"loss": 0.0})]).y_labels == ["-1", "0", "1"]


def test_labels_take_the_digits_needed_to_differ() -> None:
    chart = draw_loss_curve([(1, {"loss": 0.51201}), (2, {"loss": 0.51299})])
    values = [float(label) for label in chart.y_labels]
    assert values == sorted(values) and len(set(values)) == 3
    assert max(len(label) for label in chart.y_labels) > len("0.512")


def test_a_long_curve_is_a_line_without_markers() -> None:
    history = [(step, {"loss": 1 / step}) for step in range(1, 201)]
    chart = draw_loss_curve(history)
    assert not chart.markers and len(chart.points["loss"]) == 200
    assert draw_loss_curve(history[:5]).markers


def test_grid_columns_are_labelled(tmp_path: Path) -> None:
    # Flat light tiles: anything dark in the picture is a label.
    rows = [[torch.full((3, 16, 16), 0.9) for _ in range(3)] for _ in range(2)]
    path = save_grid(tmp_path / "grid.png", rows)
    picture = read_rgb(path)
    assert picture.shape[:2] == grid_shape(2, (16, 16))
    height, width = picture.shape[:2]
    column_width = (width - 2 * 2) // 3
    header = height - (2 * column_width + 2)  # above the two rows of square tiles
    labels = [
        picture[:header, c * (column_width + 2) : c * (column_width + 2) + column_width] for c in range(3)
    ]
    for label in labels:
        assert (label.min(axis=2) < 128).any()
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])
    assert not (picture[header:].min(axis=2) < 128).any()


@pytest.mark.usefixtures("toy_tasks")
def test_a_three_step_run_draws_a_readable_chart_and_grid(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    rng = np.random.default_rng(0)
    for index in range(20):
        save_image(folder / f"{index:02d}.png", rng.random((20, 20, 3)).astype(np.float32))
    out = tmp_path / "run"
    train("invert", str(folder), out=out, steps=3, batch_size=4, device="cpu", num_workers=0, progress=False)

    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    history = [(event["step"], event["losses"]) for event in events if event["event"] == "train"]
    chart = draw_loss_curve(history)
    assert chart.markers and len(set(chart.y_labels)) == 3
    assert np.array_equal(read_rgb(out / "loss.png"), chart.image)
    grid = read_rgb(out / "samples" / "step-000003.png")
    assert grid.shape[:2] == grid_shape(2, (16, 16))
