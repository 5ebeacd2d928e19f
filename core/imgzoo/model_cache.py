"""The one cache of loaded pipelines, shared by ``imgzoo.run``, ``imgzoo run`` and ``imgzoo serve``.

Keyed by everything that makes a pipeline (task, weights, device, precision, backend, config
overrides and tiling), least recently used first out: a long-lived process trying many options
does not keep every model it ever loaded. Two threads asking for the same pipeline load it once;
loading one does not hold up calls that use another.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgzoo.pipeline import Pipeline

__all__ = ["DEFAULT_CAPACITY", "cached_pipeline", "clear_cache", "ensure_capacity"]

DEFAULT_CAPACITY = 8

_cache: OrderedDict[str, Pipeline] = OrderedDict()
_lock = threading.Lock()
_loading: dict[str, threading.Lock] = {}
_capacity = DEFAULT_CAPACITY
_generation = 0  # bumped by clear_cache(): a load that started before is not kept


def cached_pipeline(
    task: str,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "torch",
    config_file: str | Path | None = None,
    options: dict[str, Any] | None = None,
) -> Pipeline:
    """The pipeline ``imgzoo.load`` makes of these arguments, loaded once and then reused."""
    from imgzoo.pipeline import load

    options = dict(options or {})
    key = json.dumps(
        [task, weights, device, precision, backend, config_file, options], sort_keys=True, default=str
    )
    with _lock:
        pipeline = _cache.get(key)
        if pipeline is not None:
            _cache.move_to_end(key)
            return pipeline
        key_lock = _loading.setdefault(key, threading.Lock())
        started = _generation
    with key_lock:
        pipeline = _cache.get(key)
        if pipeline is None:
            pipeline = load(
                task,
                weights,
                device=device,
                precision=precision,
                backend=backend,
                config_file=config_file,
                **options,
            )
            with _lock:
                if started != _generation:
                    return pipeline  # the cache was cleared meanwhile (new registries, say)
                _cache[key] = pipeline
                while len(_cache) > _capacity:
                    evicted, _ = _cache.popitem(last=False)
                    _loading.pop(evicted, None)
    return pipeline


def ensure_capacity(count: int) -> None:
    """Keep at least ``count`` pipelines (a server that serves ``count`` models at once)."""
    global _capacity
    with _lock:
        _capacity = max(_capacity, count)


def clear_cache() -> None:
    """Drop every cached pipeline (their memory is freed once no one else holds them), and
    keep none whose load is under way."""
    global _generation
    with _lock:
        _generation += 1
        _cache.clear()
        _loading.clear()
