"""The hooks a plugin can implement: this file is everything there is to plug in.

A plugin is a module (or object) with functions marked ``@imgzoo.hookimpl`` and named as below,
exposed through the ``imgzoo`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.imgzoo]
    mytask = "my_package.plugin"

    # my_package/plugin.py
    import imgzoo
    from my_package.config import MyConfig   # pydantic only: cheap

    IMGZOO_PLUGIN_API = 3

    @imgzoo.hookimpl
    def register_tasks(register):
        register(imgzoo.TaskDeclaration(
            name="mytask", description="...", task_class="my_package.task:MyTask", config=MyConfig,
        ))

A plugin module may declare the plugin API versions it was written for, ``IMGZOO_PLUGIN_API = 3``
(or a tuple); a plugin that targets none of :data:`SUPPORTED_PLUGIN_APIS` is refused with a
message saying which work.

Every hook takes a ``register`` callback, so a plugin can register any number of things (or
none) and imgzoo can tell which plugin registered what. Hooks run once, when the zoo is first
used, and must be cheap: what a plugin registers names the module that does the work
(``"package.module:Class"``), imported on first use, so that ``imgzoo list`` stays fast.

imgzoo calls each hook through pluggy, plugin by plugin in pluggy's order (``tryfirst`` and
``trylast`` are honoured; a ``wrapper``/``hookwrapper`` implementation wraps each plugin's
call), so that a plugin that raises is reported and the others keep what they registered.
None of these hooks returns anything: none is ``firstresult``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import argparse

    from imgzoo.task import TaskDeclaration

PROJECT_NAME = "imgzoo"
#: Version of the plugin API described in this file and in :class:`imgzoo.Task`.
PLUGIN_API_VERSION = 3
#: Every API a plugin may target.
SUPPORTED_PLUGIN_APIS = (3,)
#: Backend names imgzoo provides itself; a plugin backend cannot take them.
BUILTIN_BACKEND_NAMES = ("torch", "onnxruntime")
#: Training logger names imgzoo provides itself; a plugin logger cannot take them.
BUILTIN_LOGGER_NAMES = ("tensorboard", "mlflow")
#: ``imgzoo`` subcommands imgzoo provides itself; a plugin command cannot take them.
BUILTIN_COMMAND_NAMES = (
    "list",
    "info",
    "run",
    "export",
    "publish",
    "serve",
    "plugins",
    "new-plugin",
    "train",
    "eval",
    "data",
)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_tasks(register: Callable[[TaskDeclaration], None]) -> None:
    """Register image-to-image tasks.

    Called once per plugin when the zoo loads. Call ``register(imgzoo.TaskDeclaration(...))``
    for each task: the declaration holds what ``imgzoo list`` and ``imgzoo info`` show, and
    ``task_class="package.module:Class"``, imported when the task is first used and checked
    against the declaration then. The ``name`` is the public name (``imgzoo.run(name, image)``).
    Two plugins registering the same name is an error naming both; the name is then usable
    from neither. Return nothing.
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register named data sources usable as ``--data NAME`` (for example ``minifigs``).

    Called once per plugin when the zoo loads. Call ``register(name, factory,
    description="...")`` where ``factory(resolution=..., seed=..., **options)`` returns a
    :class:`imgzoo.data.base.Dataset`. Options come from the data spec
    ``NAME:key=value,key=value``. Two plugins registering the same name is an error naming
    both, as for tasks. Return nothing.
    """


@hookspec
def register_registry_files(register: Callable[[Path], None]) -> None:
    """Contribute ``registry.toml``-format files: named weights, descriptions, metrics.

    Called once per plugin when the zoo loads. Call ``register(path)`` for each file; it is
    read at once (a broken file fails the plugin), and its entries merge into the catalogue
    after the built-in ``registry.toml`` and before user files (``IMGZOO_REGISTRY``,
    ``imgzoo.add_registry``), so a user can always override. Weights ``file`` entries are
    resolved relative to the file. Return nothing.
    """


@hookspec
def register_backends(register: Callable[[str, str], None]) -> None:
    """Register inference backends: what runs a task's models (``load(..., backend=NAME)``,
    ``imgzoo run --backend NAME``).

    Called once per plugin when the zoo loads. Call ``register(name, backend)`` for each, where
    ``backend`` is ``"package.module:ClassName"``: the class is imported when the backend is
    first used, so the plugin module need not import the runtime it wraps. A name of
    :data:`BUILTIN_BACKEND_NAMES`, or one another plugin registers too, is an error naming both;
    imgzoo's own backend keeps the built-in name. Return nothing.
    """


@hookspec
def register_loggers(register: Callable[[str, str], None]) -> None:
    """Register training loggers: where a run's metrics go besides ``metrics.jsonl``
    (``train(..., loggers=["NAME"])``, ``imgzoo train --logger NAME``).

    Called once per plugin when the zoo loads. Call ``register(name, logger)`` for each, where
    ``logger`` is ``"package.module:ClassName"`` naming a subclass of
    :class:`imgzoo.training.loggers.Logger`: it is imported when a run first asks for it, so the plugin
    module need not import the tracking library. The trainer builds it in the main process only,
    as ``ClassName(run)`` with a :class:`imgzoo.training.loggers.LoggerRun`. A name of
    :data:`BUILTIN_LOGGER_NAMES`, or one another plugin registers too, is an error naming both;
    imgzoo's own logger keeps the built-in name. Return nothing.
    """


class RegisterCommand(Protocol):
    """The ``register`` callback of :func:`register_commands`."""

    def __call__(
        self,
        name: str,
        run: Callable[[argparse.Namespace], int | None],
        *,
        help: str = "",
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None: ...


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Add ``imgzoo`` subcommands.

    Called once per plugin when the zoo loads, before the command line is parsed. Call
    ``register(name, run, help="...", add_arguments=None)`` for each command, where

    * ``name`` is the subcommand (``imgzoo NAME``): lowercase letters, digits and dashes;
    * ``run(args: argparse.Namespace) -> int | None`` runs it and returns the exit status
      (None is 0). A :class:`imgzoo.ZooError` it raises is printed as one line, exit status 1.
      Import what the command needs inside ``run``: the plugin module stays cheap;
    * ``add_arguments(parser: argparse.ArgumentParser) -> None``, if given, adds the command's
      arguments (``--debug`` is there already).

    A name of :data:`BUILTIN_COMMAND_NAMES`, or one another plugin registers too, is an error
    naming both; imgzoo's own command keeps the built-in name. Return nothing.
    """


__all__ = [
    "BUILTIN_BACKEND_NAMES",
    "BUILTIN_COMMAND_NAMES",
    "BUILTIN_LOGGER_NAMES",
    "PLUGIN_API_VERSION",
    "SUPPORTED_PLUGIN_APIS",
    "RegisterCommand",
    "hookimpl",
    "hookspec",
    "register_backends",
    "register_commands",
    "register_datasets",
    "register_loggers",
    "register_registry_files",
    "register_tasks",
]
