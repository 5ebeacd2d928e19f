"""A task's named inputs besides its image (``mask=...``): read through :mod:`imgzoo.images`
like the image, then held to the rules the task declares in ``Task.extra_inputs`` and given the
values of their declared kind (a picture's scaling, a mask's 0/1, a map's values as given).

Importing this module imports no torch: the command line checks inputs before a model loads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from imgzoo import images as _images
from imgzoo.errors import InputError, InvalidImageError

if TYPE_CHECKING:
    from imgzoo.task import InputSpec, Task, TaskDeclaration

__all__ = ["accept_input", "check_input_names", "read_inputs"]


def check_input_names(
    task_class: type[Task] | TaskDeclaration, given: Collection[str], *, flag: str = "{name}=..."
) -> None:
    """Refuse an input name the task does not declare, and a required one that is missing.
    ``flag`` shows how to pass an input (``--input {name}=FILE`` on the command line)."""
    declared = [spec.name for spec in task_class.extra_inputs]
    for name in sorted(given):
        if name not in declared:
            takes = (
                f"its inputs are {', '.join(map(repr, declared))}" if declared else "it takes only the image"
            )
            raise InputError(
                f"task {task_class.name!r} has no input {name!r}: {takes} (`imgzoo info "
                f"{task_class.name}` lists them)",
                task=task_class.name,
                input=name,
            )
    for spec in task_class.extra_inputs:
        if spec.required and spec.name not in given:
            about = f" ({spec.description})" if spec.description else ""
            raise InputError(
                f"task {task_class.name!r} needs input {spec.name!r}{about}: pass "
                f"{flag.format(name=spec.name)}",
                task=task_class.name,
                input=spec.name,
            )


def read_inputs(
    task_class: type[Task], images: list[_images.Image], given: Mapping[str, Any]
) -> dict[str, list[_images.Image]]:
    """Read each named input given for ``images`` (one per image: a list for a list of images)
    and check it against the task's rules; keyed by input name, optional ones left out when
    not given."""
    check_input_names(task_class, [name for name, value in given.items() if value is not None])
    read: dict[str, list[_images.Image]] = {}
    for spec in task_class.extra_inputs:
        value = given.get(spec.name)
        if value is None:
            continue
        try:
            extras, _ = _images.read_images(value, any_range=spec.kind != "image")
        except InvalidImageError as error:
            raise InvalidImageError(
                f"input {spec.name!r} of task {task_class.name!r}: {error}", source=error.source
            ) from error
        if len(extras) != len(images):
            raise InputError(
                f"task {task_class.name!r} got {len(images)} image(s) but {len(extras)} {spec.name!r} "
                f"input(s): pass one {spec.name} per image (a list, as for the images)",
                task=task_class.name,
                input=spec.name,
            )
        for image, extra in zip(images, extras, strict=True):
            accept_input(task_class, spec, image, extra)
        read[spec.name] = extras
    return read


def accept_input(task_class: type[Task], spec: InputSpec, image: _images.Image, extra: _images.Image) -> None:
    """Hold one read input to its declared channels and size (that of ``image``, its image),
    then give its pixels the values of its declared kind."""
    channels = extra.channels + (extra.alpha is not None)
    if spec.channels is not None and channels != spec.channels:
        kind = "gray" if spec.channels == 1 else "RGB"
        raise InputError(
            f"task {task_class.name!r}: input {spec.name!r} ({extra.source}) has {channels} channels, but "
            f"the task takes {spec.channels} ({kind}): convert it to {kind}",
            task=task_class.name,
            input=spec.name,
        )
    if spec.same_size and (extra.height, extra.width) != (image.height, image.width):
        raise InputError(
            f"task {task_class.name!r}: input {spec.name!r} ({extra.source}) is "
            f"{extra.width}x{extra.height}, "
            f"but must have the size of its image {image.source}, {image.width}x{image.height}: resize it",
            task=task_class.name,
            input=spec.name,
        )
    if spec.kind == "mask":
        extra.pixels = (extra.stored != 0).astype(np.float32)
    elif spec.kind == "map":
        extra.pixels = extra.stored.astype(np.float32)  # an integer file's own values, not scaled
