"""The built-in ``colorize`` task: gray to colour with the convolutional autoencoder of
"Application of Autoencoders and GANs" (section 3).

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party one.
Importing it is cheap: torch, OpenCV and the model load when the task is first used.
"""

from __future__ import annotations

from collections.abc import Callable

import imgzoo

IMGZOO_PLUGIN_API = 1  # the plugin API this module is written for

__all__ = ["register_tasks"]


@imgzoo.hookimpl
def register_tasks(register: Callable[[type[imgzoo.Task]], None]) -> None:
    from imgzoo_colorize.task import ColorizeTask

    register(ColorizeTask)
