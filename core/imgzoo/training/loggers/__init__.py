"""Training loggers: where a run's metrics go besides ``metrics.jsonl`` and ``loss.png``.

A logger is a small class (:class:`Logger`): the trainer builds it once per run, in the main
process only, and calls it with the scalars of each log line and evaluation, each evaluation's
picture grid, and the run's final files. Built in: ``tensorboard`` (``pip install
"imgzoo[tensorboard]"``) and ``mlflow`` (``pip install "imgzoo[mlflow]"``). A plugin adds more
(W&B, say) with the ``register_loggers`` hook. As with backends, this table imports no logger:
a logger's module, and the library it wraps, are imported when a run asks for it.

A resumed run continues its loggers' runs: :attr:`LoggerRun.resumed_step` is the step of the
checkpoint it continues from, and a logger drops (or hides) what the interrupted run logged
after it, so that no step is logged twice.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgzoo.errors import ConfigError, PluginError

__all__ = ["BUILTIN_LOGGERS", "Logger", "LoggerRun", "logger_class", "logger_names", "open_loggers"]

BUILTIN_LOGGERS = {
    "tensorboard": "imgzoo.training.loggers.tensorboard_logger:TensorBoardLogger",
    "mlflow": "imgzoo.training.loggers.mlflow_logger:MlflowLogger",
}
"""Built-in loggers by name (:data:`imgzoo.hookspecs.BUILTIN_LOGGER_NAMES`), as ``"module:Class"``."""


@dataclass(frozen=True)
class LoggerRun:
    """What a logger is told about the run it logs."""

    task: str
    """The task's name (MLflow names the experiment after it)."""
    out_dir: Path
    """The run's output folder (MLflow names the run after it; TensorBoard writes under it)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The run's settings: the recipe's training settings and the task's config, flat
    (``unet.ngf``), as they are recorded in the weights' recipe."""
    resumed_step: int | None = None
    """None for a new run; else the step of the checkpoint a resumed run continues from."""


class Logger:
    """The interface of a training logger. Every method but ``__init__`` may be left as is.

    ``__init__(run)`` opens (or, for a resumed run, reopens) the logger's run. Steps are
    optimizer steps; ``log_scalars`` gets flat names: ``loss/NAME``, ``lr/NAME``,
    ``images_per_s``, ``data_wait`` after each log line, ``val/METRIC`` after each evaluation.
    """

    name = ""
    """The name runs ask for it by (``--logger NAME``)."""

    @classmethod
    def check(cls) -> None:
        """Raise :class:`~imgzoo.errors.MissingExtraError` if what the logger needs is not
        installed; called before the run starts, so that it fails in seconds."""

    def __init__(self, run: LoggerRun) -> None:
        self.run = run

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Log ``values`` at ``step``."""

    def log_image(self, step: int, tag: str, path: Path) -> None:
        """Log the picture at ``path`` (a PNG the trainer wrote) under ``tag`` at ``step``."""

    def log_artifact(self, path: Path) -> None:
        """Keep the file at ``path`` with the run (the final weights, the registry entry)."""

    def close(self) -> None:
        """Flush and close; the run may be resumed later."""


def _table() -> dict[str, str]:
    from imgzoo import plugins

    return {**BUILTIN_LOGGERS, **plugins.logger_entries()}


def logger_names() -> list[str]:
    """Every logger's name: the built-in ones first, then the plugins', sorted."""
    return [*BUILTIN_LOGGERS, *sorted(set(_table()) - set(BUILTIN_LOGGERS))]


def logger_class(name: str, *, task: str = "") -> type[Logger]:
    """The class of logger ``name``, imported and checked (:meth:`Logger.check`).

    An unknown name is a :class:`ConfigError` of the ``loggers`` setting; a name two plugins
    register, or a class that cannot be imported, a :class:`PluginError`; a missing package a
    :class:`~imgzoo.errors.MissingExtraError` naming the extra."""
    from imgzoo import plugins

    clashing = plugins.logger_conflicts().get(name)
    if clashing:
        raise plugins.clash_error("logger", name, clashing)
    table = _table()
    if name not in table:
        raise ConfigError(task, [("loggers", f"unknown logger {name!r}: use {' or '.join(logger_names())}")])
    location = table[name]
    module_name, _, class_name = location.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise PluginError(
            f"logger {name!r}: cannot import {location} ({type(error).__name__}: {error})"
        ) from error
    if not (isinstance(found, type) and issubclass(found, Logger)):
        raise PluginError(f"logger {name!r}: {location} is not a subclass of imgzoo.training.loggers.Logger")
    found.check()
    return found


def open_loggers(classes: Sequence[type[Logger]], run: LoggerRun) -> list[Logger]:
    """One opened logger per class; if one fails to open, those opened before it are closed."""
    opened: list[Logger] = []
    try:
        for cls in classes:
            opened.append(cls(run))
    except BaseException:
        for logger in opened:
            logger.close()
        raise
    return opened
