"""Build a task's config from its layered sources, later ones winning:

    the Config class's defaults
    < the weights' metadata (what the weights were trained with)
    < a TOML or JSON file (``--config FILE``)
    < Python keyword arguments / ``--set key=value`` on the command line

Dotted keys reach nested fields (``--set optimizer.lr=0.01``). Any validation failure becomes a
:class:`~imgzoo.errors.ConfigError` naming the task and each failing field.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from imgzoo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "build_config",
    "expand_dotted",
    "flatten_dotted",
    "merged",
    "parse_assignments",
    "read_config_file",
]


MAX_NESTING = 32
"""Most levels of tables and lists within one another a config may have (a task's config has
two or three): deeper ones would exhaust Python's recursion in the parsers and the merge."""


def read_config_file(path: str | Path, *, task: str) -> dict[str, Any]:
    """Read a ``.toml`` or ``.json`` config file into a dict."""
    path = Path(path)
    kind = path.suffix.lstrip(".") or "TOML"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(task, [("(file)", f"cannot read {path}: {error.strerror or error}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(task, [("(file)", f"{path} is not a text file: expected UTF-8 {kind}")]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except RecursionError:
        raise ConfigError(task, [("(file)", f"{path} nests deeper than {MAX_NESTING} levels")]) from None
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(task, [("(file)", f"{path} is not valid {kind}: {error}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            task, [("(file)", f"{path} must hold a table of settings, not {type(data).__name__}")]
        )
    _require_shallow(data, task=task, source=str(path))
    return data


def parse_assignments(assignments: Iterable[str], *, task: str) -> dict[str, Any]:
    """Turn ``["a=1", "b.c=true", "name=x"]`` into a nested dict.

    A value is read as JSON when it parses (numbers, booleans, lists, quoted strings), else kept
    as a plain string, so ``--set loss=mse`` needs no quotes.
    """
    flat: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(task, [(assignment, "expected key=value")])
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        except RecursionError:
            value = _TOO_DEEP
        flat[key.strip()] = value
    _require_shallow(flat, task=task, source="--set")
    return expand_dotted(flat)


def build_config(
    config_class: type[BaseModel],
    *,
    task: str,
    weights_config: Mapping[str, Any] | None = None,
    file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> BaseModel:
    """Merge the layers (see the module docstring) and validate once, at the end."""
    combined: dict[str, Any] = {}
    _require_shallow(weights_config or {}, task=task, source="weights metadata")
    layers: list[tuple[str, Mapping[str, Any]]] = [("weights metadata", weights_config or {})]
    if file is not None:
        layers.append((str(file), read_config_file(file, task=task)))
    _require_shallow(overrides or {}, task=task, source="arguments")
    layers.append(("arguments", expand_dotted(overrides or {})))
    for _, layer in layers:
        _deep_update(combined, layer)
    try:
        return config_class.model_validate(combined)
    except ValidationError as error:
        sources = ", ".join(name for name, layer in layers if layer)
        raise ConfigError.from_validation_error(task, error, source=sources) from None


def flatten_dotted(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``, each name after ``prefix``: the inverse of
    :func:`expand_dotted`."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(flatten_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def expand_dotted(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}``; nested mappings are copied, never changed."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        layer: Any = value
        for part in reversed(key.split(".")):
            layer = {part: layer}
        _deep_update(nested, layer)
    return nested


def merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base``, mapping by mapping; neither is changed."""
    result: dict[str, Any] = {}
    _deep_update(result, base)
    _deep_update(result, update)
    return result


_TOO_DEEP = object()  # a --set value too deeply nested to parse


def _require_shallow(settings: Mapping[str, Any], *, task: str, source: str) -> None:
    """A ConfigError naming the first setting that nests deeper than :data:`MAX_NESTING`
    (a dotted name's parts count as levels), found without recursion."""
    for name, value in settings.items():
        pending = [(value, str(name).count(".") + 1)]
        while pending:
            item, depth = pending.pop()
            if depth > MAX_NESTING or item is _TOO_DEEP:
                shown = name if len(str(name)) <= 40 else f"{str(name)[:40]}..."
                raise ConfigError(task, [(shown, f"nests deeper than {MAX_NESTING} levels")], source=source)
            if isinstance(item, Mapping):
                pending += [(inner, depth + 1) for inner in item.values()]
            elif isinstance(item, (list, tuple)):
                pending += [(inner, depth + 1) for inner in item]


def _deep_update(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _deep_update(target[key], value)
        else:
            target[key] = value
