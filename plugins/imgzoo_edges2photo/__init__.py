"""The ``edges2photo`` task: edge maps and line drawings to photos with pix2pix.

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party
one. Importing it is cheap: it declares the task, whose module (torch, the models) is imported
when the task is first used. :func:`imgzoo_edges2photo.edges.extract_edges` is public, for
making edge maps the way the task's training inputs are made.
"""

from __future__ import annotations

from collections.abc import Callable

import imgzoo
from imgzoo_edges2photo.config import Edges2PhotoConfig

IMGZOO_PLUGIN_API = 3  # the plugin API this module is written for

__all__ = ["EDGES2PHOTO", "register_tasks"]

EDGES2PHOTO = imgzoo.TaskDeclaration(
    name="edges2photo",
    description="Edge map or line drawing to photo (pix2pix: U-Net generator, PatchGAN discriminator)",
    task_class="imgzoo_edges2photo.task:Edges2PhotoTask",
    config=Edges2PhotoConfig,
)


@imgzoo.hookimpl
def register_tasks(register: Callable[[imgzoo.TaskDeclaration], None]) -> None:
    register(EDGES2PHOTO)
