"""Inference backends: what runs a task's forward pass, found by name.

A backend has one job, as a transport has in httpx: take a batch of preprocessed inputs (an
NxCxHxW tensor, what the task's ``preprocess`` makes) and return the task's forward pass on it,
float32 on the CPU, on its own device and precision. Everything around it (reading, batching by
shape, tiling, postprocessing, warnings, saving) is the :class:`~imgzoo.Pipeline`'s and the same
for every backend. See :class:`imgzoo.backends.base.Backend` for the interface.

Built in: ``torch`` and ``onnxruntime`` (``pip install "imgzoo[onnx]"``). A plugin adds more
with the ``register_backends`` hook. This table imports neither torch nor any backend: a
backend's module is imported when it is first used, so the command line can list and check
backend names cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from imgzoo.errors import BackendError

if TYPE_CHECKING:
    from imgzoo.backends.base import Backend

__all__ = ["BUILTIN_BACKENDS", "DEFAULT_BACKEND", "backend_class", "backend_names", "check_backend"]

DEFAULT_BACKEND = "torch"

BUILTIN_BACKENDS = {
    "torch": "imgzoo.backends.pytorch:TorchBackend",
    "onnxruntime": "imgzoo.backends.onnx_runtime:OnnxRuntimeBackend",
}
"""Built-in backends by name (:data:`imgzoo.hookspecs.BUILTIN_BACKEND_NAMES`), as ``"module:Class"``."""


def _table() -> dict[str, str]:
    from imgzoo import plugins

    return {**BUILTIN_BACKENDS, **plugins.backend_entries()}


def backend_names() -> list[str]:
    """Every backend's name: the built-in ones first, then the plugins', sorted."""
    return [*BUILTIN_BACKENDS, *sorted(set(_table()) - set(BUILTIN_BACKENDS))]


def check_backend(name: str) -> str:
    """``name`` if it is a backend's, else a :class:`~imgzoo.BackendError` listing the others
    (or a :class:`~imgzoo.PluginError` naming the plugins that each register it)."""
    from imgzoo import plugins

    clashing = plugins.backend_conflicts().get(name)
    if clashing:
        raise plugins.clash_error("backend", name, clashing)
    if name not in _table():
        raise BackendError(f"unknown backend {name!r}: use {' or '.join(backend_names())}", backend=name)
    return name


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``, imported on first use."""
    from imgzoo.backends.base import Backend

    location = _table()[check_backend(name)]
    module_name, _, class_name = location.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise BackendError(
            f"backend {name!r}: cannot import {location} ({type(error).__name__}: {error})", backend=name
        ) from error
    if not (isinstance(found, type) and issubclass(found, Backend)):
        raise BackendError(
            f"backend {name!r}: {location} is not a subclass of imgzoo.backends.base.Backend", backend=name
        )
    return found
