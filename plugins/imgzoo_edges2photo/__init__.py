"""The ``edges2photo`` task: edge maps and line drawings to photos with pix2pix.

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party
one. Importing it is cheap: the task class, torch and the models load when the zoo asks.
:func:`imgzoo_edges2photo.edges.extract_edges` is public, for making edge maps the way the
task's training inputs are made.
"""

from __future__ import annotations

from collections.abc import Callable

import imgzoo

IMGZOO_PLUGIN_API = 1  # the plugin API this module is written for

__all__ = ["register_tasks"]


@imgzoo.hookimpl
def register_tasks(register: Callable[[type[imgzoo.Task]], None]) -> None:
    from imgzoo_edges2photo.task import Edges2PhotoTask

    register(Edges2PhotoTask)
