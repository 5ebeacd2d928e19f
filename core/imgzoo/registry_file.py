"""One registry file (``registry.toml`` format), read and checked: what the zoo knows about
tasks, their descriptions and their named weights. No torch, no plugins:
:mod:`imgzoo.catalogue` merges the files, :mod:`imgzoo.plugins` checks those plugins contribute.

A registry file::

    [tasks.colorize]
    description = "Grayscale to color (the paper's autoencoder)"
    default_weights = "minifigs-v1"

    [tasks.colorize.weights.minifigs-v1]
    file = "imgzoo_colorize:weights/colorize-minifigs-v1.safetensors"   # or a path, or url = "https://..."
    sha256 = "…64 hex digits…"          # optional for file = "hf://OWNER/REPO[@REVISION]/PATH" only
    card = "https://..."                 # optional: the model card (hf:// weights: their repository)
    size = 1234567                                   # optional: bytes; a bigger download is stopped
    license = "MIT"
    recipe = { steps = 3000, batch_size = 10, optimizer = "rmsprop" }
    metrics = { psnr = 27.1, colorfulness_ratio = 0.8 }
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from imgzoo.errors import RegistryError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["read_registry_file"]

_ALLOWED_TASK_KEYS = {"description", "plugin", "default_weights", "weights"}


def read_registry_file(path: Path) -> dict[str, dict[str, Any]]:
    """The ``[tasks]`` table of the registry file at ``path``, its shape checked: task name ->
    entry. A RegistryError naming the file and the table at fault otherwise."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RegistryError(
            f"cannot read registry file {path}: {error.strerror or error}", path=path
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"registry file {path} is not valid TOML: {error}", path=path) from None
    tasks = data.get("tasks", {})
    if not isinstance(tasks, dict):
        raise RegistryError(f"registry file {path}: [tasks] must be a table", path=path)
    for task, entry in tasks.items():
        if not isinstance(entry, dict):
            raise RegistryError(f"registry file {path}: [tasks.{task}] must be a table", path=path)
        unknown = set(entry) - _ALLOWED_TASK_KEYS
        if unknown:
            raise RegistryError(
                f"registry file {path}: [tasks.{task}] has unknown keys {sorted(unknown)}; "
                f"allowed: {sorted(_ALLOWED_TASK_KEYS)}",
                path=path,
            )
        weights = entry.get("weights", {})
        if not isinstance(weights, dict) or not all(isinstance(w, dict) for w in weights.values()):
            raise RegistryError(
                f"registry file {path}: [tasks.{task}.weights] must hold one table per named weights, "
                f"like [tasks.{task}.weights.NAME]",
                path=path,
            )
    return tasks
