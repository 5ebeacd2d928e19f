"""The built-in ``colorize`` task: gray to colour with the convolutional autoencoder of
"Application of Autoencoders and GANs" (section 3).

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party one.
Importing it is cheap: torch, OpenCV and the model load when the task is first used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from imgzoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from imgzoo.task import Task

__all__ = ["register_tasks"]


@hookimpl
def register_tasks(register: Callable[[type[Task]], None]) -> None:
    from imgzoo_colorize.task import ColorizeTask

    register(ColorizeTask)
