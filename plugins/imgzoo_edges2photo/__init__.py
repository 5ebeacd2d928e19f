"""The ``edges2photo`` task: edge maps and line drawings to photos with pix2pix.

An ordinary imgzoo plugin, loaded through the ``imgzoo`` entry-point group like a third-party
one. Importing it is cheap: the task class, torch and the models load when the zoo asks.
:func:`imgzoo_edges2photo.edges.extract_edges` is public, for making edge maps the way the
task's training inputs are made.
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
    from imgzoo_edges2photo.task import Edges2PhotoTask

    register(Edges2PhotoTask)
