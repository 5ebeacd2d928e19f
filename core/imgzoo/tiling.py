"""Tiled inference: run a task on an image larger than it wants to see at once.

A task opts in by declaring ``tiling = Tiling(tile=..., overlap=..., halo=..., multiple=...)``.
The pipeline then cuts an image larger than ``tile`` into overlapping tiles, runs the task's
own ``preprocess`` → ``forward`` (tiles batched) → ``postprocess`` on each, and blends the
results into one preallocated output::

    input   ┌────────┬──┬────────┬──┬───┐    tiles overlap by at least ``overlap`` pixels;
            │ tile 0 │  │ tile 1 │  │ 2 │    in each overlap the results cross-fade, after
            └────────┴──┴────────┴──┴───┘    dropping ``halo`` pixels next to each cut edge

The cross-fade weights are separable, one window per row of tiles and one per column, and sum
to one wherever tiles overlap, so no full-size weight map is needed and memory is bounded by a
batch of tiles plus the output itself. A task whose output is ``Task.scale`` times larger gets
its tiles placed and blended at that scale. Only tasks whose result at a pixel depends on a
neighbourhood of it (fully convolutional ones) can be tiled; a task that resizes the whole
picture must not declare ``tiling``, and forcing ``tile=`` on it is refused.

Importing this module imports neither torch nor numpy (task modules import it to declare).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from imgzoo.errors import TilingError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from imgzoo.task import Task

TileInput = TypeVar("TileInput")

__all__ = ["TILE_BATCH_PIXELS", "Tiling", "blend_windows", "plan_spans", "resolve_tiling", "run_tiled"]

TILE_BATCH_PIXELS = 2**18
"""Most input pixels one forward pass sees (4 tiles of 256x256, 1 of 512x512 or larger): the tile batch
shrinks below ``batch_size`` to keep large tiles from multiplying the memory a pass needs."""


@dataclass(frozen=True)
class Tiling:
    """How a task may be run tile by tile (all sizes in input pixels).

    ``tile``: the largest tile side; images up to this size on both sides run whole.
    ``overlap``: how many pixels neighbouring tiles share (at least twice ``halo``).
    ``halo``: how far the model looks around a pixel, half its receptive field; results this close
    to a tile's cut edge are dropped, so with enough overlap the seams vanish exactly.
    ``multiple``: tile offsets and sides are multiples of it (the model's total stride), so each
    tile sees the same sampling grid as the whole image would.
    """

    tile: int
    overlap: int
    halo: int = 0
    multiple: int = 1

    def __post_init__(self) -> None:
        fields = {"tile": self.tile, "overlap": self.overlap, "halo": self.halo, "multiple": self.multiple}
        for name, value in fields.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if name == "multiple" else 0)
            ):
                raise TilingError(f"Tiling.{name} must be a whole number of pixels, got {value!r}")
        if self.tile % self.multiple:
            raise TilingError(
                f"tile {self.tile} is not a multiple of {self.multiple}: use "
                f"{max(self.multiple, self.tile // self.multiple * self.multiple)}"
            )
        if self.overlap < 2 * self.halo:
            raise TilingError(f"overlap {self.overlap} is less than twice the halo {self.halo}: widen it")
        if self.tile < 3 * self.overlap + self.multiple:
            raise TilingError(
                f"tile {self.tile} is too small for an overlap of {self.overlap}: "
                f"use at least {3 * self.overlap + self.multiple}"
            )

    def splits(self, height: int, width: int) -> bool:
        """Whether an image of this size is cut into tiles (it is larger than one tile)."""
        return max(height, width) > self.tile


def resolve_tiling(task: Task, tile: Tiling | int | bool | None) -> Tiling | None:
    """The tiling a pipeline uses for ``task`` given the user's ``tile=``: a tile side (rounded up
    to the task's ``multiple``), ``None``/``True`` for the task's own, ``0``/``False`` for none,
    or a whole :class:`Tiling`. Refused for a task that declares no tiling."""
    declared = type(task).tiling
    if tile is None or tile is True:
        if tile is True and declared is None:
            raise _not_tileable(task, "tile=True")
        return declared
    if tile is False or tile == 0:
        return None
    if declared is None:
        raise _not_tileable(task, f"tile={tile!r}")
    if isinstance(tile, Tiling):
        return tile
    if isinstance(tile, int) and tile > 0:
        multiple = declared.multiple
        return replace(declared, tile=-(-tile // multiple) * multiple)  # round up to the stride
    raise TilingError(
        f"tile={tile!r} for task {task.name!r}: give a tile side in pixels, or 0 to run images whole"
    )


def _not_tileable(task: Task, asked: str) -> TilingError:
    return TilingError(
        f"task {task.name!r} cannot run in tiles ({asked}): its result at a pixel depends on the "
        "whole picture; run it without tile="
    )


def plan_spans(length: int, tiling: Tiling) -> list[tuple[int, int]]:
    """The ``(start, stop)`` of each tile along one side of ``length`` pixels.

    As few tiles as cover the side, spread evenly, each at most ``tiling.tile`` long, starting at
    multiples of ``tiling.multiple`` and sharing at least ``tiling.overlap`` with its neighbour;
    the last one ends at the image edge.
    """
    tile, overlap, multiple = tiling.tile, tiling.overlap, tiling.multiple
    if length <= tile:
        return [(0, length)]
    longest_step = (tile - overlap) // multiple * multiple
    count = math.ceil((length - overlap) / longest_step)
    step = _round_up(math.ceil((length - overlap) / count), multiple)
    size = min(tile, _round_up(step + overlap, multiple))
    spans = [(0, size)]
    while spans[-1][1] < length:
        start = spans[-1][0] + step
        spans.append((start, min(start + size, length)))
    return spans


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def blend_windows(spans: list[tuple[int, int]], *, halo: int, scale: int = 1) -> list[np.ndarray]:
    """The weight of each output pixel of each tile along one side (``scale`` times the input's):
    1 where the tile is alone, 0 within ``halo`` of a cut edge, and a linear cross-fade in between,
    so that the weights of overlapping tiles sum to one."""
    import numpy as np

    windows = []
    for index, (start, stop) in enumerate(spans):
        centres = np.arange(scale * start, scale * stop, dtype=np.float64) + 0.5
        window = np.ones(centres.size, np.float64)
        if index > 0:  # fade in across the overlap with the previous tile
            window *= _cross_fade(centres, scale * start, scale * spans[index - 1][1], scale * halo)
        if index + 1 < len(spans):  # and out across the overlap with the next one
            window *= 1 - _cross_fade(centres, scale * spans[index + 1][0], scale * stop, scale * halo)
        windows.append(window.astype(np.float32))
    return windows


def _cross_fade(centres: np.ndarray, begin: int, end: int, halo: int) -> np.ndarray:
    """The later tile's share of an overlap ``[begin, end)``: 0 up to ``halo`` past its cut edge,
    1 from ``halo`` before the earlier tile's, rising linearly between."""
    import numpy as np

    first, last = begin + halo, end - halo
    if last <= first:  # overlap == 2 * halo: a hard cut in the middle
        return (centres >= first).astype(np.float64)
    return np.clip((centres - first) / (last - first), 0.0, 1.0)


def run_tiled(
    tiling: Tiling,
    height: int,
    width: int,
    *,
    scale: int,
    crop: Callable[[slice, slice], TileInput],
    preprocess: Callable[[TileInput], torch.Tensor],
    forward: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    postprocess: Callable[[torch.Tensor, TileInput], np.ndarray],
    batch_size: int,
) -> np.ndarray:
    """Run a task on a ``height`` x ``width`` image tile by tile and blend the results.

    The pipeline supplies the task's steps: ``crop(rows, columns)`` cuts what ``preprocess``
    takes from the image and its named inputs, ``forward`` runs preprocessed tiles (it batches
    those of one shape), and ``postprocess`` turns a tile's output into pixels. Tiles are cut and
    converted a pass at a time, so memory holds one pass of tiles and the output. Returns the
    output for the whole image, ``scale`` times its height and width.
    """
    import numpy as np

    rows, columns = plan_spans(height, tiling), plan_spans(width, tiling)
    row_windows = blend_windows(rows, halo=tiling.halo, scale=scale)
    column_windows = blend_windows(columns, halo=tiling.halo, scale=scale)
    per_pass = max(1, min(batch_size, TILE_BATCH_PIXELS // (tiling.tile * tiling.tile)))
    # Tiles of one size next to each other, so that a pass holds as few shapes as can be.
    positions = sorted(
        ((r, c) for r in range(len(rows)) for c in range(len(columns))),
        key=lambda rc: (rows[rc[0]][1] - rows[rc[0]][0], columns[rc[1]][1] - columns[rc[1]][0]),
    )
    output: np.ndarray | None = None
    for start in range(0, len(positions), per_pass):
        batch = positions[start : start + per_pass]
        crops = [crop(slice(*rows[r]), slice(*columns[c])) for r, c in batch]
        results = forward([preprocess(tile_input) for tile_input in crops])
        for (r, c), tile_input, result in zip(batch, crops, results, strict=True):
            tile = np.asarray(postprocess(result, tile_input), dtype=np.float32)
            if tile.ndim == 2:
                tile = tile[..., None]
            if output is None:
                output = np.zeros((scale * height, scale * width, tile.shape[2]), np.float32)
            _blend(output, tile, rows[r][0] * scale, columns[c][0] * scale, row_windows[r], column_windows[c])
    assert output is not None
    return output


def _blend(
    output: np.ndarray, tile: np.ndarray, top: int, left: int, rows: np.ndarray, columns: np.ndarray
) -> None:
    """Add ``tile`` weighted by its windows into ``output`` at ``(top, left)``, in place."""
    expected = (rows.size, columns.size)
    if tile.shape[:2] != expected or tile.shape[2] != output.shape[2]:
        raise TilingError(
            f"a tile's postprocess returned shape {tile.shape}, expected {(*expected, output.shape[2])}: "
            "a tiled task must return its input tile's size times Task.scale, with a fixed channel count"
        )
    region = output[top : top + rows.size, left : left + columns.size]
    region += tile * rows[:, None, None] * columns[None, :, None]
