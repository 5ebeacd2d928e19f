"""What a finished run leaves for others: ``TASK.safetensors``, self-describing, and its
``registry-entry.toml``.

The weights file's metadata says what the weights are (``task``, ``config``), how they were
trained (``recipe``: the recipe settings of :mod:`imgzoo.training.config`, plus the steps, the
data, the processes, the optimizers and the weights the run started from), how good they are
(``metrics``), on what (``dataset``) and by which code (``code_version``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from imgzoo.errors import OutputError
from imgzoo.files import write_atomically
from imgzoo.task import Task
from imgzoo.training.config import RECIPE_SETTINGS, TrainConfig
from imgzoo.training.environment import code_version
from imgzoo.training.report import registry_entry, registry_name
from imgzoo.weights import save_weights, state_tensors, write_failure

__all__ = ["Exported", "recipe", "write_weights"]


def recipe(
    config: TrainConfig,
    *,
    steps: int,
    data_spec: str,
    processes: int,
    optimizers: Mapping[str, torch.optim.Optimizer],
    base_lrs: Mapping[str, Sequence[float]],
    started_from: Mapping[str, str] | None,
) -> dict[str, Any]:
    """How the weights were trained, enough to train them again."""
    described = config.model_dump(mode="json", include=set(RECIPE_SETTINGS))
    # The run's length as it ended, in steps, whichever unit it was asked in.
    described.update(steps=steps, epochs=None, data=data_spec, processes=processes)
    if started_from:
        described["started_from"] = dict(started_from)
    described["optimizers"] = {
        name: {"class": type(optimizer).__name__, "lr": lrs[0] if len(lrs) == 1 else list(lrs)}
        for (name, optimizer), lrs in zip(optimizers.items(), base_lrs.values(), strict=True)
    }
    return described


Exported = tuple[Path, str, Path]
"""The weights file, its sha256 and its registry entry."""


def write_weights(
    out_dir: Path,
    task: Task,
    models: Mapping[str, torch.nn.Module],
    config: TrainConfig,
    *,
    recipe: Mapping[str, Any],
    metrics: Mapping[str, float],
    dataset: Mapping[str, Any],
) -> Exported:
    """Write ``TASK.safetensors`` (the models ``config.export`` asks for, as ``{model}.{key}``)
    and ``registry-entry.toml`` beside it, naming the weights after ``out_dir``."""
    names = list(models) if config.export == "all" else [task.inference_model_name]
    tensors: dict[str, torch.Tensor] = {}
    for name in names:
        tensors.update(state_tensors(models[name], prefix=name))
    metadata = {
        "task": task.name,
        "config": task.config.model_dump(mode="json"),
        "recipe": dict(recipe),
        "metrics": dict(metrics),
        "dataset": dict(dataset),
        "code_version": code_version(),
    }
    path = out_dir / f"{task.name}.safetensors"
    dtype = torch.float16 if config.export_dtype == "fp16" else None
    sha256 = save_weights(path, tensors, metadata=metadata, dtype=dtype)
    entry = registry_entry(
        task.name,
        registry_name(out_dir.resolve().name),
        file=path.name,
        sha256=sha256,
        recipe=dict(recipe),
        metrics=dict(metrics),
    )
    entry_path = out_dir / "registry-entry.toml"
    try:
        write_atomically(entry_path, entry.encode("utf-8"))
    except OSError as error:
        raise OutputError(
            write_failure(entry_path, error, instead="choose another --out"), path=entry_path
        ) from error
    return path, sha256, entry_path
