"""imgzoo: a plugin-based model zoo for image-to-image deep learning.

    >>> import imgzoo
    >>> imgzoo.list_tasks()
    >>> colour = imgzoo.run("colorize", "photo.jpg")
    >>> pipe = imgzoo.load("colorize"); pipe(array)
    >>> imgzoo.export("colorize", output="colorize.onnx")   # or load(..., backend="onnxruntime")

Importing imgzoo is cheap: torch loads on first use of ``run``, ``load``, ``train`` or ``Model``.

A plugin imports only this package and :mod:`imgzoo.metrics` (tests also use
:mod:`imgzoo.testing` and :mod:`imgzoo.data`): everything else is private.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from imgzoo.catalogue import add_registry, list_datasets, list_tasks, task_info
from imgzoo.errors import (
    ArgumentError,
    BackendError,
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    ExportError,
    InputError,
    InvalidImageError,
    MemoryBudgetError,
    MissingExtraError,
    OutputError,
    OutputExistsError,
    PluginError,
    RegistryError,
    RequestError,
    ResultError,
    TaskBugError,
    TaskContractError,
    TilingError,
    UnknownTaskError,
    WeightsError,
    ZooError,
)
from imgzoo.formats import pixel_limit_for_opencv
from imgzoo.hookspecs import hookimpl
from imgzoo.plugins import register_plugin, unregister_plugin
from imgzoo.task import InputSpec, StepContext, Task, TaskConfig, TaskDeclaration
from imgzoo.tiling import Tiling

pixel_limit_for_opencv()  # before anything imports OpenCV: every imgzoo module imports this first

if TYPE_CHECKING:
    from imgzoo import domain, metrics
    from imgzoo.api import run
    from imgzoo.data.base import Sample
    from imgzoo.exporting import ExportReport, export
    from imgzoo.images import luma
    from imgzoo.model import Model
    from imgzoo.pipeline import Pipeline, load
    from imgzoo.prepacked import prepack_convolutions
    from imgzoo.training import evaluate, train

try:
    __version__ = version("imgzoo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

# Names whose modules import torch: resolved on first access.
_LAZY = {
    "run": "imgzoo.api",
    "load": "imgzoo.pipeline",
    "Pipeline": "imgzoo.pipeline",
    "Model": "imgzoo.model",
    "train": "imgzoo.training",
    "evaluate": "imgzoo.training",
    "Sample": "imgzoo.data.base",
    "export": "imgzoo.exporting",
    "ExportReport": "imgzoo.exporting",
    "prepack_convolutions": "imgzoo.prepacked",
    "luma": "imgzoo.images",  # no torch, but numpy and OpenCV need not load for `imgzoo list`
}
# Public submodules, also resolved on first access: ``imgzoo.metrics.psnr(outputs, targets)``.
_LAZY_MODULES = {"metrics": "imgzoo.metrics", "domain": "imgzoo.domain"}

__all__ = [
    "ArgumentError",
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "ExportError",
    "ExportReport",
    "InputError",
    "InputSpec",
    "InvalidImageError",
    "MemoryBudgetError",
    "MissingExtraError",
    "Model",
    "OutputError",
    "OutputExistsError",
    "Pipeline",
    "PluginError",
    "RegistryError",
    "RequestError",
    "ResultError",
    "Sample",
    "StepContext",
    "Task",
    "TaskBugError",
    "TaskConfig",
    "TaskContractError",
    "TaskDeclaration",
    "Tiling",
    "TilingError",
    "UnknownTaskError",
    "WeightsError",
    "ZooError",
    "__version__",
    "add_registry",
    "domain",
    "evaluate",
    "export",
    "hookimpl",
    "list_datasets",
    "list_tasks",
    "load",
    "luma",
    "metrics",
    "prepack_convolutions",
    "register_plugin",
    "run",
    "task_info",
    "train",
    "unregister_plugin",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        value = import_module(_LAZY_MODULES[name])
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imgzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
