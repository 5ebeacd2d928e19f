"""``imgzoo.run``: one call, with loaded pipelines cached between calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgzoo import plugins
from imgzoo.model_cache import cached_pipeline, clear_cache
from imgzoo.options import split_options
from imgzoo.pipeline import check_batch_size, deliver, prepare_requests

__all__ = ["clear_cache", "run"]


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
    a task's inputs and config fields never share a name. The task's warnings about a picture
    are Python warnings. The loaded pipeline is cached, so later calls with the same config do
    not load again; calls are safe from several threads.
    ``backend``: ``"torch"``, ``"onnxruntime"`` (fp32 on the CPU; see :func:`imgzoo.load`), or
    one a plugin registers. ``output`` and ``overwrite`` save the results as
    :meth:`Pipeline.__call__` does; the inputs and outputs are checked before any model is loaded.
    """
    task_class = plugins.get_task_class(task)  # a misspelled task is reported before any image is read
    check_batch_size(batch_size)
    inputs, settings = split_options(task_class, options)
    requests, spec = prepare_requests(task_class, image, inputs, output=output, overwrite=overwrite)
    pipeline = cached_pipeline(
        task, weights=weights, device=device, precision=precision, backend=backend, options=settings
    )
    return deliver(pipeline.run(requests, batch_size=batch_size), spec, task_class.output_kind)
