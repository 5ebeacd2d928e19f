"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

::

    OUT/checkpoints/step-00000100/tensors.safetensors   model.*, optimizer.*, rng.* tensors
    OUT/checkpoints/step-00000100/state.json            step, configs, optimizer settings, RNG, best
    OUT/checkpoints/best/                               the same, for the best evaluation so far

A checkpoint folder appears complete or not at all: it is written under a temporary name,
fsynced and renamed. Nested state (an optimizer's ``state_dict()``) is split by
:func:`split_tensors` into JSON with ``{"__tensor__": name}`` placeholders and a flat dict of
tensors, and put back together by :func:`join_tensors`.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from imgzoo.errors import ZooError
from imgzoo.files import fsync_path

__all__ = [
    "best_dir",
    "checkpoint_dir",
    "join_tensors",
    "latest_checkpoint",
    "list_checkpoints",
    "prune_checkpoints",
    "read_checkpoint",
    "read_state",
    "split_tensors",
    "write_checkpoint",
]

FORMAT = 1
TENSORS_FILE, STATE_FILE = "tensors.safetensors", "state.json"
_STEP_DIR = re.compile(r"step-(\d{8,})")


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step-{step:08d}"


def best_dir(out_dir: Path) -> Path:
    return out_dir / "checkpoints" / "best"


# ── nested state <-> JSON + tensors ────────────────────────────────────────────────────────────
def split_tensors(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON data, its tensors moved into ``tensors`` under names starting with ``prefix``."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: split_tensors(item, f"{prefix}.{key}", tensors) for key, item in value.items()}
        # Optimizer state is keyed by parameter number; JSON keys can only be strings.
        return {
            "__items__": [
                [key, split_tensors(item, f"{prefix}.{key}", tensors)] for key, item in value.items()
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [split_tensors(item, f"{prefix}.{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [split_tensors(item, f"{prefix}.{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ZooError(f"cannot checkpoint {prefix}: a {type(value).__name__} is neither a tensor nor JSON data")


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`split_tensors`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__items__" in value:
            return {key: join_tensors(item, tensors) for key, item in value["__items__"]}
        if "__tuple__" in value:
            return tuple(join_tensors(item, tensors) for item in value["__tuple__"])
        return {key: join_tensors(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [join_tensors(item, tensors) for item in value]
    return value


def host_rng_state() -> dict[str, Any]:
    """The global numpy and Python generators' states, as JSON data."""
    name, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, python_gauss = random.getstate()
    return {
        "numpy": [name, np.asarray(keys).tolist(), int(position), int(has_gauss), float(gauss)],
        "python": [version, list(internal), python_gauss],
    }


def restore_host_rng_state(state: dict[str, Any]) -> None:
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    version, internal, python_gauss = state["python"]
    random.setstate((version, tuple(internal), python_gauss))


# ── files ────────────────────────────────────────────────────────────────────────────────────
def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write a checkpoint folder atomically (replacing one of the same name); return it."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    temporary = parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        save_file(tensors, str(temporary / TENSORS_FILE))
        (temporary / STATE_FILE).write_text(
            json.dumps({"format": FORMAT, **state}, indent=1), encoding="utf-8"
        )
        for name in (TENSORS_FILE, STATE_FILE):
            fsync_path(temporary / name)
        fsync_path(temporary)
        if folder.exists():
            # Directories cannot be renamed over each other: move the old one aside first.
            stale = parent / f".old-{folder.name}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, stale)
            os.replace(temporary, folder)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(temporary, folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    fsync_path(parent)
    return folder


def read_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ZooError(f"checkpoint {folder} is unreadable ({error}): resume from another one") from None
    if not isinstance(state, dict):
        raise ZooError(
            f"checkpoint {folder} is unreadable ({folder / STATE_FILE} holds no JSON object): "
            "resume from another one"
        )
    if state.get("format") != FORMAT:
        raise ZooError(
            f"checkpoint {folder} was written by another version of imgzoo (format {state.get('format')!r})"
        )
    return state


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = read_state(folder)
    try:
        tensors = load_file(str(folder / TENSORS_FILE))
    except (OSError, SafetensorError) as error:
        raise ZooError(f"checkpoint {folder} is unreadable ({error}): resume from another one") from None
    return tensors, state


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """The complete ``step-*`` checkpoints of a run, oldest first."""
    folder = out_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_DIR.fullmatch(child.name)
        if match and (child / STATE_FILE).is_file() and (child / TENSORS_FILE).is_file():
            found.append((int(match[1]), child))
    return sorted(found)


def latest_checkpoint(out_dir: Path, task: str) -> Path:
    """The checkpoint to resume ``task`` from, or a ZooError saying why there is none."""
    found = list_checkpoints(out_dir)
    if not found:
        raise ZooError(
            f"nothing to resume: {out_dir / 'checkpoints'} holds no checkpoint; "
            "start without --resume, or point --out at the run to continue"
        )
    folder = found[-1][1]
    trained = read_state(folder).get("task")
    if trained != task:
        raise ZooError(
            f"cannot resume task {task!r} from {folder}: that checkpoint belongs to task {trained!r}; "
            "use another --out, or resume with that task"
        )
    return folder


def prune_checkpoints(out_dir: Path, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest ``step-*`` checkpoints (``best`` is separate) and
    any leftovers of interrupted writes."""
    for _, folder in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(folder, ignore_errors=True)
    for pattern in (".tmp-*", ".old-*"):
        for leftover in (out_dir / "checkpoints").glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
