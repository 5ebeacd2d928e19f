"""The catalogue: which tasks exist, what they do, and their named weights.

Tasks come from plugins; what the zoo knows *about* them (descriptions, named weights with
their sha256, licence, recipe and metrics, the default weights) comes from registry files in
``registry.toml`` format, merged in this order, later files winning field by field:

    the built-in registry.toml  <  files contributed by plugins  <  $IMGZOO_REGISTRY  <  add_registry()

``IMGZOO_REGISTRY`` holds one or more paths separated by ``os.pathsep``. The format of a registry
file is in :mod:`imgzoo.registry_file`.

Reading the catalogue imports neither torch nor any task's model code.
"""

from __future__ import annotations

import fnmatch
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import imgzoo.plugins as plugins
from imgzoo.errors import ConfigError, RegistryError, WeightsError
from imgzoo.hub import HubAddress, is_hub_address
from imgzoo.registry_file import read_registry_file

if TYPE_CHECKING:
    from imgzoo.data.base import DatasetFactory

__all__ = [
    "TaskInfo",
    "WeightsEntry",
    "add_registry",
    "dataset_factory",
    "describe_tasks",
    "list_datasets",
    "list_tasks",
    "task_info",
    "weights_config",
]

ENV_REGISTRY = "IMGZOO_REGISTRY"


class WeightsEntry(BaseModel):
    """One named set of weights for a task."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name used with weights=... and --weights.")
    file: str | None = Field(
        None,
        description="Local path (relative to the registry file), 'package:path', or a Hugging Face Hub "
        "address 'hf://OWNER/REPO[@REVISION]/PATH.safetensors' (downloaded into the Hub's cache).",
    )
    url: str | None = Field(None, description="http(s) URL, downloaded once into the cache.")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Full sha256 of the file, checked before use. Required, except for hf:// weights "
        "(whose own recorded digest is checked in any case).",
    )
    card: str | None = Field(
        None, description="URL of the weights' model card; for hf:// weights, their Hub repository's page."
    )
    size: int | None = Field(
        None, gt=0, description="Size of the file in bytes: a download that grows past it is stopped."
    )
    license: str = Field("", description="Licence of the weights.")
    description: str = Field("", description="What these weights are good at.")
    recipe: dict[str, Any] = Field(default_factory=dict, description="How they were trained.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Measured quality (and on what).")
    base_dir: Path | None = Field(
        None, description="Directory of the registry file that named them.", exclude=True
    )

    @model_validator(mode="after")
    def _one_source(self) -> WeightsEntry:
        if (self.file is None) == (self.url is None):
            raise ValueError("give exactly one of 'file' and 'url'")
        if not is_hub_address(self.source):
            if self.sha256 is None:
                raise ValueError("give the file's 'sha256' (only hf:// weights may leave it out)")
            return self
        try:
            address = HubAddress.parse(self.source)
        except WeightsError as error:
            raise ValueError(str(error)) from None
        if self.card is None:
            self.card = address.page
        return self

    @property
    def source(self) -> str:
        return self.file if self.file is not None else str(self.url)


@dataclass
class TaskInfo:
    """What ``imgzoo info TASK`` shows."""

    name: str
    description: str
    plugin: str
    default_weights: str | None
    weights: dict[str, WeightsEntry] = field(default_factory=dict)
    config_schema: dict[str, Any] = field(default_factory=dict)
    output_kind: str = "image"
    scale: int = 1
    inputs: list[dict[str, Any]] = field(default_factory=list)
    """The task's named inputs besides its image: name, description, channels, required."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "plugin": self.plugin,
            "default_weights": self.default_weights,
            "weights": {name: entry.model_dump(mode="json") for name, entry in self.weights.items()},
            "output_kind": self.output_kind,
            "scale": self.scale,
            "inputs": self.inputs,
        }


_lock = threading.Lock()
_user_files: list[Path] = []


def builtin_registry_file() -> Path:
    """The shipped registry.toml: inside the package in a wheel, at the repository root in a
    source checkout or editable install."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "registry.toml", package_dir.parent.parent / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise RegistryError(
        f"imgzoo's registry.toml is missing (looked in {package_dir} and the source root); reinstall imgzoo",
        path=package_dir / "registry.toml",
    )


def add_registry(path: str | Path) -> None:
    """Add a user registry file (same format as registry.toml); it overrides earlier ones."""
    path = Path(path).expanduser()
    read_registry_file(path)  # fail now, with the file's name, rather than at first use
    with _lock:
        _user_files.append(path)


def clear_user_registries() -> None:
    """Forget files added with :func:`add_registry` (tests use it)."""
    with _lock:
        _user_files.clear()


def registry_files() -> list[Path]:
    env = [Path(part) for part in os.environ.get(ENV_REGISTRY, "").split(os.pathsep) if part.strip()]
    with _lock:
        user = list(_user_files)
    return [builtin_registry_file(), *plugins.registry_files(), *env, *user]


def merged_entries() -> dict[str, dict[str, Any]]:
    """The merged raw entries of every registry file, by task name."""
    merged: dict[str, dict[str, Any]] = {}
    for path in registry_files():
        for task, entry in read_registry_file(path).items():
            target = merged.setdefault(task, {"weights": {}})
            for key, value in entry.items():
                if key == "weights":
                    for weights_name, weights in value.items():
                        target["weights"][weights_name] = {
                            **weights,
                            "name": weights_name,
                            "base_dir": path.parent,
                        }
                else:
                    target[key] = value
    return merged


def list_tasks(pattern: str = "*") -> list[str]:
    """Names of the installed tasks matching a shell-style wildcard, sorted (``"col*"``)."""
    return sorted(name for name in plugins.task_declarations() if fnmatch.fnmatchcase(name, pattern))


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the data sources plugins register (``--data NAME``) matching a shell-style
    wildcard, sorted."""
    return sorted(name for name in plugins.dataset_factories() if fnmatch.fnmatchcase(name, pattern))


def dataset_factory(name: str) -> DatasetFactory | None:
    """The factory of the dataset a plugin registers as ``name`` (None when none does); a
    PluginError naming them when several plugins register it."""
    conflicts = plugins.dataset_conflicts()
    if name in conflicts:
        raise plugins.clash_error("dataset", name, conflicts[name])
    return plugins.dataset_factories().get(name)


def task_info(name: str) -> TaskInfo:
    """Everything the zoo knows about one task (its description, plugin, weights, config schema)."""
    declared = plugins.task_declaration(name)  # not the class: listing must not import torch
    entry = merged_entries().get(name, {"weights": {}})
    try:
        weights = {key: WeightsEntry.model_validate(value) for key, value in entry["weights"].items()}
    except ValidationError as error:
        raise ConfigError.from_validation_error(name, error, source="registry weights entry") from None
    default = entry.get("default_weights")
    if default is not None and default not in weights:
        raise RegistryError(
            f"registry: task {name!r} names default_weights {default!r}, which has no [weights] entry"
        )
    return TaskInfo(
        name=name,
        description=entry.get("description") or declared.description,
        plugin=plugins.task_plugin(name),
        default_weights=default,
        weights=weights,
        config_schema=declared.config.model_json_schema(),
        output_kind=declared.output_kind,
        scale=declared.scale,
        inputs=[
            {
                "name": spec.name,
                "description": spec.description,
                "channels": spec.channels,
                "required": spec.required,
                "kind": spec.kind,
            }
            for spec in declared.extra_inputs
        ],
    )


def describe_tasks(names: list[str]) -> list[dict[str, Any]]:
    """The catalogue entries of ``names`` as JSON-ready dicts: what ``imgzoo list --json`` prints
    and what the server's ``GET /v1/tasks`` answers."""
    return [task_info(name).as_dict() for name in names]


def weights_config(task: str, weights: str | None = None) -> dict[str, Any] | None:
    """The config that a task's named weights (by default, its default weights) were trained
    with, as recorded in the weights file; read from its header, without torch and without
    downloading. None when there are no such weights or the file is not on this machine."""
    from imgzoo.weights import local_weights_file, read_metadata

    info = task_info(task)
    entry = info.weights.get(weights or info.default_weights or "")
    if entry is None:
        return None
    path = local_weights_file(entry.source, sha256=entry.sha256, base_dir=entry.base_dir)
    if path is None:
        return None
    try:
        config = read_metadata(path).get("config")
    except WeightsError:
        return None  # loading them will say what is wrong; a listing shows the class defaults
    return config if isinstance(config, dict) else None


def resolve_weights_name(task: str, weights: str | None) -> WeightsEntry | None:
    """The registry entry meant by ``weights`` (a name, or None for the default), or None when
    ``weights`` is not a registered name (a path or URL then)."""
    info = task_info(task)
    if weights is None:
        return info.weights[info.default_weights] if info.default_weights else None
    if weights in info.weights:
        return info.weights[weights]
    return None


def unknown_weights_error(task: str, weights: str) -> WeightsError:
    names = sorted(task_info(task).weights)
    known = ", ".join(names) if names else "none are registered"
    return WeightsError(
        f"task {task!r} has no weights named {weights!r} and no such file exists (registered: {known})",
        path=weights,
    )
