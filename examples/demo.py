"""Run every installed task that has weights on the bundled example images.

    python examples/demo.py [--out outputs/demo]

For each task it writes the results to ``OUT/TASK/`` and a picture ``OUT/TASK.png`` with one row
per example: what the model was given | what it made | the original.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

import imgzoo
from imgzoo.images import load_image, save_image

EXAMPLES = Path(__file__).resolve().parent
ROW_HEIGHT = 192


def what_users_give(task: imgzoo.Task, photo: np.ndarray) -> np.ndarray:
    """What the task is shown for an example photo: what a user would give it for that truth
    (``Task.degrade``: gray for colorize, the edge map for edges2photo); a task without
    ``degrade`` gets the photo itself."""
    try:
        return task.degrade(photo, np.random.default_rng(0))
    except NotImplementedError:
        return photo


def as_rgb(image: np.ndarray) -> np.ndarray:
    image = image if image.ndim == 3 else image[..., None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]


def row(*images: np.ndarray) -> np.ndarray:
    """Images side by side, each scaled to the same height, with a white gap between them."""
    scaled = []
    for image in images:
        height, width = image.shape[:2]
        size = (max(1, round(width * ROW_HEIGHT / height)), ROW_HEIGHT)
        scaled += [cv2.resize(as_rgb(image), size, interpolation=cv2.INTER_AREA), np.ones((ROW_HEIGHT, 6, 3))]
    return np.concatenate(scaled[:-1], axis=1)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    return np.concatenate(padded, axis=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", type=Path)
    args = parser.parse_args()
    photos = sorted((EXAMPLES / "minifigs").glob("*.png")) + sorted((EXAMPLES / "photos").glob("*.jpg"))
    tasks = [name for name in imgzoo.list_tasks() if imgzoo.task_info(name).default_weights]
    if not tasks:
        print("no installed task has weights yet: train one with `imgzoo train`", file=sys.stderr)
        return 1
    for task in tasks:
        pipeline = imgzoo.load(task)
        rows = []
        for path in photos:
            photo = load_image(path).rgb()
            given = what_users_give(pipeline.task, photo)
            made = pipeline(given)
            save_image(args.out / task / f"{path.stem}.png", made)
            rows.append(row(given, made, photo))
        sheet = save_image(args.out / f"{task}.png", stack(rows))
        print(f"{task}: {len(photos)} examples with weights {pipeline.weights.name!r} -> {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
