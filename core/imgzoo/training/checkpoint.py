"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

::

    OUT/checkpoints/step-00000100/tensors.safetensors   model.*, optimizer.*, rng.* tensors
    OUT/checkpoints/step-00000100/state.json            step, configs, optimizer settings, RNG, best
    OUT/checkpoints/best -> best-00000080-1a2b3c4d      the same, for the best evaluation so far

A checkpoint folder appears complete or not at all: it is written under a temporary name,
fsynced and renamed. ``best`` is a link swapped in one rename, so it never goes missing while
a better checkpoint replaces it (where links cannot be made, a folder replaced by two renames).
The tensors file records the digest of its tensors and the sha256 of ``state.json`` (see
:mod:`imgzoo.weights`): a damaged checkpoint is refused, and resuming falls back to an older one.

Nested state (an optimizer's ``state_dict()``) is split by
:func:`split_tensors` into JSON with ``{"__tensor__": name}`` placeholders and a flat dict of
tensors, and put back together by :func:`join_tensors`. :func:`capture_tensors` and
:func:`restore_tensors` do this for a trainer's models, optimizers and random generators; the
rest of the state is a :class:`~imgzoo.training.state.RunState`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo.errors import CheckpointError, WeightsError
from imgzoo.files import fsync_path
from imgzoo.training.state import RunState
from imgzoo.weights import load_state, read_tensors, state_tensors, write_failure, write_tensors

__all__ = [
    "best_dir",
    "capture_tensors",
    "checkpoint_dir",
    "first_non_finite",
    "join_tensors",
    "list_checkpoints",
    "prune_checkpoints",
    "read_checkpoint",
    "read_state",
    "restore_tensors",
    "resume_point",
    "split_tensors",
    "write_best_checkpoint",
    "write_checkpoint",
]

FORMAT = 1
TENSORS_FILE, STATE_FILE = "tensors.safetensors", "state.json"
STATE_DIGEST_KEY = "state_sha256"
_STEP_DIR = re.compile(r"step-(\d{8,})")
_BEST_TARGET = re.compile(r"best-\d{8,}-[0-9a-f]{8}")


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
    raise CheckpointError(
        f"cannot checkpoint {prefix}: a {type(value).__name__} is neither a tensor nor JSON data"
    )


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


# ── a trainer's tensors <-> a checkpoint ────────────────────────────────────────────────────────
def capture_tensors(
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of a checkpoint (``model.NAME.*``, ``optimizer.NAME.*``, torch's generators
    as ``rng.*``), and each optimizer's ``state_dict()`` as JSON data pointing into them."""
    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        tensors.update(state_tensors(model, prefix=f"model.{name}"))
    optimizer_states = {
        name: split_tensors(optimizer.state_dict(), f"optimizer.{name}", tensors)
        for name, optimizer in optimizers.items()
    }
    tensors["rng.torch"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors, optimizer_states


def restore_tensors(
    folder: Path,
    tensors: dict[str, torch.Tensor],
    state: RunState,
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    device: torch.device,
) -> None:
    """Load what :func:`capture_tensors` saved (from ``folder``) into the models, optimizers and
    random generators, and ``state``'s numpy and Python generator states."""
    for name, model in models.items():
        load_state(model, tensors, prefix=f"model.{name}", path=folder)
    for name, optimizer in optimizers.items():
        if name not in state.optimizers:
            raise CheckpointError(
                f"checkpoint {folder} has no state for optimizer {name!r} of task {state.task!r}", path=folder
            )
        optimizer.load_state_dict(join_tensors(state.optimizers[name], tensors))
    torch.set_rng_state(tensors["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    restore_host_rng_state(state.rng)


def first_non_finite(
    models: Mapping[str, torch.nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]
) -> str | None:
    """``"KEY of OWNER"`` for the first weight or optimizer state that is NaN or infinite, else
    None: a diverged run must never overwrite a good checkpoint. One synchronisation when all
    are finite."""
    states = {f"model {name!r}": model.state_dict() for name, model in models.items()}
    states.update({f"optimizer {name!r}": _optimizer_tensors(opt) for name, opt in optimizers.items()})
    flags = [
        torch.isfinite(tensor).all()
        for state in states.values()
        for tensor in state.values()
        if tensor.is_floating_point()
    ]
    if not flags or bool(torch.stack(flags).all()):
        return None
    return next(
        f"{key} of {owner}"
        for owner, state in states.items()
        for key, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    )


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state tensors (Adam's moments...), by a readable key."""
    return {
        f"state {index}.{key}": value
        for index, (_, state) in enumerate(optimizer.state.items())
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


# ── files ────────────────────────────────────────────────────────────────────────────────────
def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write a checkpoint folder atomically (replacing one of the same name); return it.

    A failed write (a full disk) is a CheckpointError naming the folder; nothing half-written is left.
    """
    parent = folder.parent
    temporary = parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    # Bytes, not text: the sha256 recorded below is of the file exactly as written.
    state_bytes = json.dumps({"format": FORMAT, **state}, indent=1).encode("utf-8")
    try:
        try:
            temporary.mkdir(parents=True)
            (temporary / STATE_FILE).write_bytes(state_bytes)
            state_sha256 = hashlib.sha256(state_bytes).hexdigest()
            write_tensors(temporary / TENSORS_FILE, tensors, metadata={STATE_DIGEST_KEY: state_sha256})
            fsync_path(temporary / STATE_FILE)
            fsync_path(temporary)
        except OSError as error:
            raise CheckpointError(
                write_failure(folder, error, instead="choose another --out"), path=folder
            ) from error
        _replace_folder(temporary, folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    fsync_path(parent)
    return folder


def _replace_folder(source: Path, folder: Path) -> None:
    if folder.exists():
        # Directories cannot be renamed over each other: move the old one aside first.
        stale = folder.parent / f".old-{folder.name}-{uuid.uuid4().hex[:8]}"
        os.replace(folder, stale)
        os.replace(source, folder)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(source, folder)


def write_best_checkpoint(
    out_dir: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> Path:
    """Write the best checkpoint so far and point ``checkpoints/best`` at it; return ``best``.

    The new folder is complete before the link is swapped in one rename, and the old folder
    goes only after, so ``best`` always names a whole checkpoint.
    """
    best = best_dir(out_dir)
    target = write_checkpoint(best.parent / f"best-{step:08d}-{uuid.uuid4().hex[:8]}", tensors, state)
    link = best.parent / f".tmp-best-link-{uuid.uuid4().hex[:8]}"
    try:
        if sys.platform == "win32":  # Windows will not rename a link over a directory link
            raise NotImplementedError
        os.symlink(target.name, link, target_is_directory=True)
    except (OSError, NotImplementedError):
        # No links here: a folder, replaced by two renames.
        _replace_folder(target, best)
        return best
    previous = os.readlink(best) if best.is_symlink() else None
    os.replace(link, best)
    fsync_path(best.parent)
    if previous is not None and _BEST_TARGET.fullmatch(previous):
        shutil.rmtree(best.parent / previous, ignore_errors=True)
    return best


def read_state(folder: Path) -> dict[str, Any]:
    return _parse_state(folder, _state_bytes(folder))


def _state_bytes(folder: Path) -> bytes:
    try:
        return (folder / STATE_FILE).read_bytes()
    except OSError as error:
        raise CheckpointError(
            f"checkpoint {folder} is unreadable ({error}): resume from another one", path=folder
        ) from None


def _parse_state(folder: Path, raw: bytes) -> dict[str, Any]:
    try:
        state = json.loads(raw.decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError included
        raise CheckpointError(
            f"checkpoint {folder} is unreadable ({error}): resume from another one", path=folder
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {folder} is unreadable ({folder / STATE_FILE} holds no JSON object): "
            "resume from another one",
            path=folder,
        )
    if state.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {folder} was written by another version of imgzoo (format {state.get('format')!r})",
            path=folder,
        )
    return state


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's tensors and state, verified against the digests recorded when it was
    written; CheckpointError if it is damaged."""
    raw = _state_bytes(folder)  # read once: parsed, and hashed against the recorded sha256
    state = _parse_state(folder, raw)
    try:
        tensors, metadata = read_tensors(folder / TENSORS_FILE)
    except WeightsError as error:
        # A damaged tensors file is a damaged checkpoint: the caller resumes from another one.
        raise CheckpointError(str(error), path=folder) from error
    if hashlib.sha256(raw).hexdigest() != metadata.get(STATE_DIGEST_KEY):
        raise CheckpointError(
            f"checkpoint {folder} is damaged: {folder / STATE_FILE} no longer matches the sha256 "
            "recorded when it was written; resume from another one",
            path=folder,
        )
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


def resume_point(
    out_dir: Path, task: str, *, warn: bool = True
) -> tuple[Path, dict[str, torch.Tensor], RunState]:
    """The newest complete and verified checkpoint to resume ``task`` from, loaded:
    ``(folder, tensors, state)``.

    Newer checkpoints that are damaged (a crash or a bad disk) are skipped, with a warning naming
    each when ``warn``; a CheckpointError says why when none can be used.
    """
    found = list_checkpoints(out_dir)
    if not found:
        raise CheckpointError(
            f"nothing to resume: {out_dir / 'checkpoints'} holds no checkpoint; "
            "start without --resume, or point --out at the run to continue",
            path=out_dir / "checkpoints",
        )
    damaged: list[tuple[Path, CheckpointError]] = []
    for _, folder in reversed(found):
        try:
            tensors, raw = read_checkpoint(folder)
            state = RunState.from_dict(raw, source=folder)
        except CheckpointError as error:
            damaged.append((folder, error))
            continue
        trained = state.task
        if trained != task:
            raise CheckpointError(
                f"cannot resume task {task!r} from {folder}: that checkpoint belongs to task {trained!r}; "
                "use another --out, or resume with that task",
                path=folder,
            )
        for skipped, reason in damaged if warn else ():
            warnings.warn(
                f"resuming from {folder.name}, not from the newer {skipped.name}, "
                f"which cannot be used: {reason}",
                stacklevel=2,
            )
        return folder, tensors, state
    raise damaged[0][1]


def prune_checkpoints(out_dir: Path, keep_last: int, *, newest: int) -> None:
    """Delete all but the ``keep_last`` newest ``step-*`` checkpoints (``best`` is separate), any
    leftovers of interrupted writes, and checkpoints after step ``newest`` (the one just
    written): those are the damaged ones a resume skipped, left by a run that was abandoned."""
    found = list_checkpoints(out_dir)
    kept = [folder for step, folder in found if step <= newest]
    for folder in kept[:-keep_last] + [folder for step, folder in found if step > newest]:
        shutil.rmtree(folder, ignore_errors=True)
    folder = out_dir / "checkpoints"
    best = best_dir(out_dir)
    current_best = os.readlink(best) if best.is_symlink() else None
    leftovers = [*folder.glob(".tmp-*"), *folder.glob(".old-*")]
    # A crash between writing a best checkpoint and pointing ``best`` at it leaves an orphan.
    leftovers += [path for path in folder.glob("best-*") if _BEST_TARGET.fullmatch(path.name)]
    for leftover in leftovers:
        if leftover.is_symlink():  # a link of a best checkpoint never swapped in
            leftover.unlink(missing_ok=True)
        elif leftover.name != current_best:
            shutil.rmtree(leftover, ignore_errors=True)
