"""What a run leaves for people to read: ``metrics.jsonl``, picture grids, ``loss.png`` and the
registry entry of the trained weights. Pictures are drawn with OpenCV (no plotting library)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from imgzoo.errors import OutputError
from imgzoo.files import write_atomically
from imgzoo.images import save_image
from imgzoo.weights import write_failure

__all__ = [
    "GRID_LABELS",
    "LossChart",
    "MetricsLog",
    "draw_loss_curve",
    "grid_shape",
    "registry_entry",
    "registry_name",
    "save_grid",
    "save_loss_curve",
]

GRID_GAP = 2
# Distinguishable line colours (RGB), one per loss.
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class MetricsLog:
    """``metrics.jsonl``: one JSON object per training log or evaluation, appended as they happen."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, event: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps(event) + "\n")
        except OSError as error:
            raise self._write_error(error) from error

    def read(self) -> list[dict[str, Any]]:
        """The events logged so far. A last line cut short (the process was killed while
        writing it) is left out; a damaged line before it is an error naming it."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        events = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    break
                raise OutputError(
                    f"{self.path}, line {number}, is not a JSON event: delete that line and resume again",
                    path=self.path,
                ) from None
        return events

    def keep_until(self, step: int) -> list[dict[str, Any]]:
        """Drop events after ``step`` (logged by a run that then stopped before its next
        checkpoint) so that a resumed run continues the log without duplicates; return the rest."""
        events = [event for event in self.read() if event.get("step", 0) <= step]
        if self.enabled and self.path.exists():
            try:
                write_atomically(self.path, "".join(json.dumps(event) + "\n" for event in events).encode())
            except OSError as error:
                raise self._write_error(error) from error
        return events

    def _write_error(self, error: OSError) -> OutputError:
        return OutputError(write_failure(self.path, error, instead="choose another --out"), path=self.path)


def grid_shape(rows: int, tile: tuple[int, int], columns: int = 3) -> tuple[int, int]:
    """(height, width) of a picture grid of ``rows`` x ``columns`` tiles of ``tile`` = (h, w),
    column labels and the enlargement of small tiles included."""
    zoom = _grid_zoom(tile)
    height, width = tile[0] * zoom, tile[1] * zoom
    header = _header_height(width)
    return header + rows * height + (rows - 1) * GRID_GAP, columns * width + (columns - 1) * GRID_GAP


GRID_LABELS = ("input", "output", "target")
# Tiles smaller than this are enlarged (by a whole factor, without smoothing) so that the
# pixels can be seen and a column label fits above them.
_GRID_MIN_TILE = 96


def _grid_zoom(tile: tuple[int, int]) -> int:
    return max(1, math.ceil(_GRID_MIN_TILE / max(1, min(tile))))


def _label_scale(column_width: int) -> float:
    return min(1.0, max(0.4, column_width / 320))


def _header_height(column_width: int) -> int:
    (_, text_height), baseline = cv2.getTextSize("Xg", _FONT, _label_scale(column_width), 1)
    return text_height + baseline + 8


def save_grid(
    path: Path, rows: Sequence[Sequence[torch.Tensor]], labels: Sequence[str] = GRID_LABELS
) -> Path:
    """Save rows of 3xHxW RGB tensors in [0, 1] (input | output | target) as one PNG, with a
    label above each column.

    Tiles are shown at the size of the largest; smaller ones (a super-resolution input, say)
    are enlarged without smoothing, as are tiles too small to look at.
    """
    tiles = [
        [tensor.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() for tensor in row] for row in rows
    ]
    largest = (
        max(tile.shape[0] for row in tiles for tile in row),
        max(tile.shape[1] for row in tiles for tile in row),
    )
    zoom = _grid_zoom(largest)
    height, width = largest[0] * zoom, largest[1] * zoom
    columns = max(len(row) for row in tiles)
    canvas = np.ones((*grid_shape(len(tiles), largest, columns), 3), dtype=np.float32)
    header = _header_height(width)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile.shape[:2] != (height, width):
                tile = cv2.resize(tile, (width, height), interpolation=cv2.INTER_NEAREST).reshape(
                    height, width, -1
                )
            top, left = header + r * (height + GRID_GAP), c * (width + GRID_GAP)
            canvas[top : top + height, left : left + width] = tile[..., :3]
    # OpenCV draws text on 8-bit pictures only: the labels go on a strip of their own.
    strip = np.full((header, canvas.shape[1], 3), 255, dtype=np.uint8)
    scale = _label_scale(width)
    for c, label in enumerate(labels[:columns]):
        (text_width, text_height), _ = cv2.getTextSize(label, _FONT, scale, 1)
        x = c * (width + GRID_GAP) + max(0, (width - text_width) // 2)
        cv2.putText(strip, label, (x, 4 + text_height), _FONT, scale, (50, 50, 50), 1, cv2.LINE_AA)
    canvas[:header] = strip / 255.0
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(path, canvas)


@dataclass
class LossChart:
    """A drawn loss curve, and what was drawn on it (for a reader that is not a person)."""

    image: np.ndarray
    """height x width x 3 uint8 RGB."""
    y_labels: list[str]
    """The y axis labels, bottom to top."""
    points: dict[str, list[tuple[int, int]]]
    """Each loss's points, as (x, y) pixels."""
    markers: bool
    """Whether each point is drawn as a dot (when there are few enough to tell apart)."""


# Up to this many points in a line, each is marked: a single point is then visible, and a
# short run's few logs can be told from an interpolated curve.
_MARKED_POINTS = 40


def draw_loss_curve(
    history: Sequence[tuple[int, Mapping[str, float]]], size: tuple[int, int] = (720, 400)
) -> LossChart:
    """Plot each named loss against the step; the y axis is logarithmic when values span > 20x."""
    width, height = size
    left, right, top, bottom = 72, 16, 16, 36
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    series: dict[str, list[tuple[int, float]]] = {}
    for step, losses in history:
        for name, value in losses.items():
            if math.isfinite(value):
                series.setdefault(name, []).append((step, value))
    points = [point for line in series.values() for point in line]
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (160, 160, 160), 1)
    chart = LossChart(
        canvas, [], {}, markers=bool(series) and max(map(len, series.values())) <= _MARKED_POINTS
    )
    if not points:
        return chart
    values = [value for _, value in points]
    logarithmic = min(values) > 0 and max(values) > 20 * min(values)

    def y_of(value: float) -> float:
        return math.log10(value) if logarithmic else value

    # Steps count from 0, so that one point, or a run's first logs, sit where they belong.
    x_low, x_high = min(0, *(step for step, _ in points)), max(step for step, _ in points)
    y_low, y_high = _padded_range(min(map(y_of, values)), max(map(y_of, values)))
    x_span, y_span = max(x_high - x_low, 1), y_high - y_low

    inset = 8  # keeps the first and last markers off the frame

    def pixel(step: int, value: float) -> tuple[int, int]:
        x = left + inset + (step - x_low) / x_span * (width - left - right - 2 * inset)
        y = height - bottom - (y_of(value) - y_low) / y_span * (height - top - bottom)
        return round(x), round(y)

    fractions = (0.0, 0.5, 1.0)
    levels = [y_low + fraction * y_span for fraction in fractions]
    chart.y_labels = _distinct_labels([10**level if logarithmic else level for level in levels])
    for fraction, label in zip(fractions, chart.y_labels, strict=True):
        y = round(height - bottom - fraction * (height - top - bottom))
        cv2.line(canvas, (left, y), (width - right, y), (225, 225, 225), 1)
        cv2.putText(canvas, label, (4, y + 4), _FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for text, x in ((str(x_low), left), (f"step {x_high}", width - right - 70)):
        cv2.putText(canvas, text, (x, height - 12), _FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for index, (name, line) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        chart.points[name] = [pixel(step, value) for step, value in line]
        cv2.polylines(canvas, [np.array(chart.points[name], dtype=np.int32)], False, colour, 2, cv2.LINE_AA)
        if chart.markers:
            for centre in chart.points[name]:
                cv2.circle(canvas, centre, 4, colour, -1, cv2.LINE_AA)
        cv2.putText(
            canvas, name, (width - right - 150, top + 16 + 16 * index), _FONT, 0.45, colour, 1, cv2.LINE_AA
        )
    return chart


def save_loss_curve(
    path: Path, history: Sequence[tuple[int, Mapping[str, float]]], size: tuple[int, int] = (720, 400)
) -> Path:
    """Save :func:`draw_loss_curve` as a PNG."""
    return save_image(path, draw_loss_curve(history, size).image)


def _padded_range(low: float, high: float) -> tuple[float, float]:
    """The y range shown for values from ``low`` to ``high``: a little wider, so that no point
    sits on the frame, and for a flat line (one point, or a loss that moves by less than 0.1%,
    which a chart scaled to it would blow up into noise) 10% of its value either side (or 1
    either side of 0)."""
    span = high - low
    if span <= 1e-3 * max(abs(low), abs(high)):
        half = 0.1 * abs(low) or 1.0
        return low - half, high + half
    return low - 0.05 * span, high + 0.05 * span


def _distinct_labels(levels: Sequence[float]) -> list[str]:
    """The levels as short numbers, with as many significant digits as it takes to tell them apart."""
    for digits in range(3, 10):
        labels = [f"{level:.{digits}g}" for level in levels]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def registry_entry(
    task: str,
    name: str,
    *,
    file: str,
    sha256: str,
    recipe: Mapping[str, Any],
    metrics: Mapping[str, Any],
    license: str | None = None,
) -> str:
    """A ``[tasks.TASK.weights.NAME]`` table for a registry file (see :mod:`imgzoo.registry_file`);
    without ``license``, a line asking for it."""
    licence_line = (
        f"license = {_toml_value(license)}"
        if license
        else 'license = "TODO"  # the licence of these weights (and of the data they were trained on)'
    )
    lines = [
        f"[tasks.{_toml_key(task)}.weights.{_toml_key(name)}]",
        f"file = {_toml_value(file)}",
        f"sha256 = {_toml_value(sha256)}",
        licence_line,
        f"recipe = {_toml_value(recipe)}",
        f"metrics = {_toml_value(metrics)}",
    ]
    return "\n".join(lines) + "\n"


def registry_name(text: str) -> str:
    """A weights name for a registry entry made from ``text`` (a run folder's name): lowercase
    letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "trained"


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    """TOML for JSON-like data; None values (TOML has no null) are left out of tables and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = [
            f"{_toml_key(str(key))} = {_toml_value(item)}" for key, item in value.items() if item is not None
        ]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value if item is not None) + "]"
    return json.dumps(str(value), ensure_ascii=False)
