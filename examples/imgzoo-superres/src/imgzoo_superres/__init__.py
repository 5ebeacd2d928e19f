"""imgzoo-superres: the ``superres`` (2x) and ``superres-x4`` tasks for imgzoo, with trained weights.

An example of a third-party imgzoo plugin, found through the ``imgzoo`` entry-point group of
this package's ``pyproject.toml``. Importing it is cheap: it declares the tasks, whose configs
are pydantic alone; torch and the model are imported only when the zoo asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imgzoo

__all__ = ["IMGZOO_PLUGIN_API", "register_registry_files", "register_tasks"]

#: The imgzoo plugin API this module was written for; imgzoo refuses to load it under another.
IMGZOO_PLUGIN_API = 3


@imgzoo.hookimpl
def register_tasks(register: Callable[[imgzoo.TaskDeclaration], None]) -> None:
    # The task's module imports torch in its methods only: its configs are cheap to reach.
    from imgzoo_superres.task import SuperResolutionConfig, SuperResolutionX4Config

    for scale, name, config, task_class in (
        (2, "superres", SuperResolutionConfig, "SuperResolutionTask"),
        (4, "superres-x4", SuperResolutionX4Config, "SuperResolutionX4Task"),
    ):
        register(
            imgzoo.TaskDeclaration(
                name=name,
                description=f"Enlarge a picture {scale}x per side, restoring detail (a small residual CNN, "
                "pixel shuffle)",
                task_class=f"imgzoo_superres.task:{task_class}",
                config=config,
                scale=scale,
            )
        )


@imgzoo.hookimpl
def register_registry_files(register: Callable[[Path], None]) -> None:
    # The shipped weights, their sha256, recipe and metrics; paths in it are relative to it.
    register(Path(__file__).with_name("registry.toml"))
