"""Telling a call's keyword options apart: the task's named inputs, its config fields, or neither.

``imgzoo.run(task, image, **options)``, ``imgzoo run --set`` and a server request's fields all
go through :func:`split_options`, so each front-end refuses the same strays with the same words.
A server request may set only the config fields its task lists in ``request_options`` (held to
their fields' bounds when the config is built); ``imgzoo.run`` may set any.
Importing this module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imgzoo.errors import ArgumentError, InputError
from imgzoo.task import TaskDeclaration

if TYPE_CHECKING:
    from imgzoo.task import Task

__all__ = ["PIPELINE_OPTIONS", "split_options"]

PIPELINE_OPTIONS = frozenset({"tile"})
"""Options that set how the pipeline runs rather than a config field (``tile=``)."""


def split_options(
    task_class: type[Task] | TaskDeclaration, options: Mapping[str, Any], *, from_request: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(named inputs, settings)`` of ``options``: the settings are config fields and
    :data:`PIPELINE_OPTIONS`. For a task with named inputs a name that is neither is refused
    here, naming both lists; for one without, the config check names it (with close matches).
    ``from_request``: the options of a server request, where a config field the task does not
    list in ``request_options`` is refused (an :class:`ArgumentError` naming it)."""
    input_names = {spec.name for spec in task_class.extra_inputs}
    if input_names:
        config = task_class.config if isinstance(task_class, TaskDeclaration) else task_class.Config
        strays = set(options) - input_names - set(config.model_fields) - PIPELINE_OPTIONS
        if strays:
            stray = sorted(strays)[0]
            raise InputError(
                f"task {task_class.name!r} has no input or config field {stray!r}: its inputs are "
                f"{', '.join(map(repr, sorted(input_names)))}; `imgzoo info {task_class.name}` lists its "
                "config fields",
                task=task_class.name,
                input=stray,
            )
    inputs = {name: value for name, value in options.items() if name in input_names}
    settings = {name: value for name, value in options.items() if name not in input_names}
    if from_request:
        config = task_class.config if isinstance(task_class, TaskDeclaration) else task_class.Config
        # Unknown names are left to the config check, which names close matches.
        fixed = set(settings) & set(config.model_fields) - set(getattr(task_class, "request_options", ()))
        for name in sorted(fixed):
            allowed = ", ".join([*getattr(task_class, "request_options", ()), *sorted(PIPELINE_OPTIONS)])
            raise ArgumentError(
                f"task {task_class.name!r}: a request may not set {name!r}: the server fixes it when it "
                f"starts (it may change the model's shape or the memory an image takes); a request may "
                f"set {allowed}",
                argument=name,
            )
    return inputs, settings
