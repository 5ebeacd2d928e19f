"""The built-in ``colorize`` task: gray to colour with the convolutional autoencoder of
"Application of Autoencoders and GANs" (section 3).

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party one.
Importing it is cheap: it declares the task, whose module (torch, OpenCV, the model) is imported
when the task is first used.
"""

from __future__ import annotations

from collections.abc import Callable

import imgzoo
from imgzoo_colorize.config import ColorizeConfig

IMGZOO_PLUGIN_API = 3  # the plugin API this module is written for

__all__ = ["COLORIZE", "register_tasks"]

COLORIZE = imgzoo.TaskDeclaration(
    name="colorize",
    description="Grayscale to colour: the paper's autoencoder predicts Lab chroma, the input keeps its L",
    task_class="imgzoo_colorize.task:ColorizeTask",
    config=ColorizeConfig,
)


@imgzoo.hookimpl
def register_tasks(register: Callable[[imgzoo.TaskDeclaration], None]) -> None:
    register(COLORIZE)
