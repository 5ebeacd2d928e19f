"""``imgzoo new-plugin NAME``: write a plugin package to start a new task from.

The package installs, registers its task through the ``imgzoo`` entry point and passes its own
tests (imgzoo's task contract, :mod:`imgzoo.testing`) as soon as it is written. Its task learns
to undo a blur: a placeholder that works end to end, for the author to replace.

The templates are the files under ``templates/`` beside this module, each named as the file it
becomes plus ``.tmpl``; their text has ``$placeholders`` (:class:`string.Template`) and their
paths ``__package__`` for the Python package's name.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from imgzoo import __version__
from imgzoo.errors import ArgumentError, OutputExistsError
from imgzoo.hookspecs import PLUGIN_API_VERSION
from imgzoo.plugins import TASK_NAME

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; only annotations need it

__all__ = ["new_plugin", "plugin_names"]

TEMPLATE_SUFFIX = ".tmpl"
PACKAGE_PLACEHOLDER = "__package__"


def plugin_names(task: str) -> dict[str, str]:
    """The names a plugin for ``task`` is written with: ``{"task", "distribution", "package",
    "class_prefix"}`` (``super-res`` -> ``imgzoo-super-res``, ``imgzoo_super_res``, ``SuperRes``)."""
    if not TASK_NAME.match(task):
        raise ArgumentError(
            f"cannot name a task {task!r}: use lowercase letters and digits, words joined by '-' or '_', "
            "starting with a letter (for example 'sharpen' or 'super-res')",
            argument="task",
        )
    words = re.split(r"[-_]", task)
    return {
        "task": task,
        "distribution": "imgzoo-" + "-".join(words),
        "package": "imgzoo_" + "_".join(words),
        "class_prefix": "".join(word.capitalize() for word in words),
    }


def new_plugin(task: str, directory: str | Path = ".") -> Path:
    """Write the plugin package for ``task`` into ``directory/imgzoo-TASK``; return that folder.

    Raises :class:`~imgzoo.ArgumentError` for an invalid name, :class:`~imgzoo.OutputExistsError`
    for a folder that exists and is not empty.
    """
    names = plugin_names(task)
    target = Path(directory).expanduser() / names["distribution"]
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise OutputExistsError(
            f"{target} already exists and is not empty: remove it, or choose another --dir", path=target
        )
    values = {
        **names,
        "plugin_api": str(PLUGIN_API_VERSION),
        "imgzoo_requirement": _imgzoo_requirement(),
    }
    for relative, template in _templates(resources.files(__name__).joinpath("templates")):
        path = target / relative.replace(PACKAGE_PLACEHOLDER, names["package"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = string.Template(template.read_text(encoding="utf-8")).substitute(values)
        path.write_text(text, encoding="utf-8")
    return target


def _templates(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """``(relative path without .tmpl, template)`` for every template under ``folder``."""
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.is_dir():
            found += _templates(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            found.append((prefix + entry.name.removesuffix(TEMPLATE_SUFFIX), entry))
    return found


def _imgzoo_requirement() -> str:
    """``imgzoo>=X.Y`` for this imgzoo's release, or plain ``imgzoo`` from an uninstalled source tree."""
    release = re.match(r"(\d+)\.(\d+)", __version__)
    if release is None or __version__.startswith("0.0.0"):
        return "imgzoo"
    return f"imgzoo>={release[1]}.{release[2]}"
