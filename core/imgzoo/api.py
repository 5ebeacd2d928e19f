"""``imgzoo.run``: one call, with loaded pipelines cached between calls."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from imgzoo import plugins
from imgzoo.errors import InputError
from imgzoo.pipeline import Pipeline, load, prepare_call

__all__ = ["clear_cache", "run"]

# Recently used pipelines, oldest first; bounded, so that a long-lived process trying many
# options does not keep every model it ever loaded.
_cache: OrderedDict[str, Pipeline] = OrderedDict()
_cache_lock = threading.Lock()
_loading_locks: dict[str, threading.Lock] = {}
MAX_CACHED_PIPELINES = 8


def run(
    task: str,
    image: Any,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "torch",
    output: str | Path | None = None,
    overwrite: bool = False,
    batch_size: int = 8,
    **options: Any,
) -> Any:
    """Run ``task`` on an image (or a list of images) and return the result.

    The image may be a path, encoded bytes, a numpy array, a torch tensor or a PIL image; the
    result has the same type, and the size and kind the task declares (an image, or a float
    map). ``options`` are the task's named inputs (``run("inpaint", photo, mask=m)``; one per
    image) and config fields of the task (``run("edges2photo", photo, extract_edges=True)``);
    a task's inputs and config fields never share a name. The loaded pipeline is cached, so
    later calls with the same config do not load again; calls are safe from several threads.
    ``backend``: ``"torch"``, or ``"onnxruntime"`` (fp32 on the CPU; see :func:`imgzoo.load`).
    ``output`` and ``overwrite`` save the results as :meth:`Pipeline.__call__` does; the inputs
    and outputs are checked before any model is loaded.
    """
    task_class = plugins.get_task_class(task)  # a misspelled task is reported before any image is read
    input_names = {spec.name for spec in task_class.extra_inputs}
    if input_names:  # for a task with inputs, a stray keyword may be either: name both lists
        strays = set(options) - input_names - set(task_class.Config.model_fields) - {"tile"}
        if strays:
            stray = sorted(strays)[0]
            raise InputError(
                f"task {task!r} has no input or config field {stray!r}: its inputs are "
                f"{', '.join(map(repr, sorted(input_names)))}; `imgzoo info {task}` lists its config fields",
                task=task,
                input=stray,
            )
    inputs = {name: value for name, value in options.items() if name in input_names}
    settings = {name: value for name, value in options.items() if name not in input_names}
    call = prepare_call(task_class, image, inputs, output=output, overwrite=overwrite, batch_size=batch_size)
    pipeline = _cached_pipeline(
        task, weights=weights, device=device, precision=precision, backend=backend, options=settings
    )
    return pipeline.run_prepared(call)


def clear_cache() -> None:
    """Drop every cached pipeline (their memory is freed once no one else holds them)."""
    with _cache_lock:
        _cache.clear()
        _loading_locks.clear()


def _cached_pipeline(
    task: str, *, weights: Any, device: str, precision: str, backend: str, options: dict[str, Any]
) -> Pipeline:
    key = json.dumps(
        [task, str(weights) if weights is not None else None, device, precision, backend, options],
        sort_keys=True,
        default=repr,
    )
    with _cache_lock:
        pipeline = _cache.get(key)
        if pipeline is not None:
            _cache.move_to_end(key)
            return pipeline
    # One lock per key: two threads asking for the same pipeline load it once, while loading
    # one task does not block calls to another.
    with _cache_lock:
        key_lock = _loading_locks.setdefault(key, threading.Lock())
    with key_lock:
        pipeline = _cache.get(key)
        if pipeline is None:
            pipeline = load(task, weights, device=device, precision=precision, backend=backend, **options)
            with _cache_lock:
                _cache[key] = pipeline
                while len(_cache) > MAX_CACHED_PIPELINES:
                    evicted, _ = _cache.popitem(last=False)
                    _loading_locks.pop(evicted, None)
    return pipeline
