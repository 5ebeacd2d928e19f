"""imgzoo-superres: the ``superres`` (2x) and ``superres-x4`` tasks for imgzoo, with trained weights.

An example of a third-party imgzoo plugin, found through the ``imgzoo`` entry-point group of
this package's ``pyproject.toml``. Importing it is cheap: the tasks, torch and the model are
imported only when the zoo asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import imgzoo

if TYPE_CHECKING:
    from imgzoo import Task

__all__ = ["IMGZOO_PLUGIN_API", "register_registry_files", "register_tasks"]

#: The imgzoo plugin API this module was written for (2: tasks whose output is larger than their input).
IMGZOO_PLUGIN_API = 2


@imgzoo.hookimpl
def register_tasks(register: Callable[[type[Task]], None]) -> None:
    from imgzoo_superres.task import SuperResolutionTask, SuperResolutionX4Task

    register(SuperResolutionTask)
    register(SuperResolutionX4Task)


@imgzoo.hookimpl
def register_registry_files(register: Callable[[Path], None]) -> None:
    # The shipped weights, their sha256, recipe and metrics; paths in it are relative to it.
    register(Path(__file__).with_name("registry.toml"))
