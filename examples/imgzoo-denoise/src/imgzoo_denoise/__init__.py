"""imgzoo-denoise: the ``denoise`` task for imgzoo, with trained weights.

An example of a third-party imgzoo plugin, found through the ``imgzoo`` entry-point group of
this package's ``pyproject.toml``. Importing it is cheap: it declares the task, whose config is
pydantic alone; torch and the model are imported only when the zoo asks for them.
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
    from imgzoo_denoise.task import DenoiseConfig  # the task's module imports torch in its methods only

    register(
        imgzoo.TaskDeclaration(
            name="denoise",
            description="Remove Gaussian, salt-and-pepper or JPEG noise (a small convolutional autoencoder)",
            task_class="imgzoo_denoise.task:DenoiseTask",
            config=DenoiseConfig,
        )
    )


@imgzoo.hookimpl
def register_registry_files(register: Callable[[Path], None]) -> None:
    # The shipped weights, their sha256, recipe and metrics; paths in it are relative to it.
    register(Path(__file__).with_name("registry.toml"))
