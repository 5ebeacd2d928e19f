"""The hooks a plugin can implement: this file is everything there is to plug in.

A plugin is a module (or object) with functions marked ``@imgzoo.hookimpl`` and named as below,
exposed through the ``imgzoo`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.imgzoo]
    mytask = "my_package.plugin"

    # my_package/plugin.py
    import imgzoo
    from my_package.config import MyConfig   # pydantic only: cheap

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
used; they must be cheap: a :class:`imgzoo.TaskDeclaration` names the task's module, which
imports torch and its model code at the top and is imported on the task's first use, so that
``imgzoo list`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from imgzoo.task import Task, TaskDeclaration

PROJECT_NAME = "imgzoo"
#: Version of the plugin API described in this file and in :class:`imgzoo.Task`.
#: API 2 added what a task may declare: named extra inputs, output geometry, "map" outputs, alpha.
#: API 3 added :class:`imgzoo.TaskDeclaration`: a task registered without importing its class.
PLUGIN_API_VERSION = 3
#: Every API a plugin may target. API 1 and 2 plugins load unchanged: each later declaration has
#: a default that is API 1's behaviour (one image in, an image of ``scale`` times its size out),
#: and registering a task class still works.
SUPPORTED_PLUGIN_APIS = (1, 2, 3)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_tasks(register: Callable[[TaskDeclaration | type[Task]], None]) -> None:
    """Register image-to-image tasks.

    Called once per plugin when the zoo loads. Call ``register(imgzoo.TaskDeclaration(...))``
    for each task: its module is imported when the task is first used. ``register(TaskClass)``
    (API 1 and 2) registers a class that is already imported. The ``name`` is the public name
    (``imgzoo.run(name, image)``). Two plugins registering the same name is an error naming
    both. Return nothing.
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register named data sources usable as ``--data NAME`` (for example ``minifigs``).

    Call ``register(name, factory, description="...")`` where ``factory(resolution=..., seed=...,
    **options)`` returns a :class:`imgzoo.data.base.Dataset`. Options come from the data spec
    ``NAME:key=value,key=value``. Two plugins registering the same name is an error naming
    both, as for tasks. Return nothing.
    """


@hookspec
def register_registry_files(register: Callable[[Path], None]) -> None:
    """Contribute ``registry.toml``-format files: named weights, descriptions, metrics.

    Call ``register(path)`` for each file; entries merge into the catalogue after the built-in
    ``registry.toml`` and before user files (``IMGZOO_REGISTRY``, ``imgzoo.add_registry``), so
    a user can always override. Weights ``file`` entries are resolved relative to the file.
    """


__all__ = [
    "PLUGIN_API_VERSION",
    "SUPPORTED_PLUGIN_APIS",
    "hookimpl",
    "hookspec",
    "register_datasets",
    "register_registry_files",
    "register_tasks",
]
