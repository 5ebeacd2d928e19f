"""Fitting a weights file's domain statistics (:mod:`imgzoo.domain`): the pictures of a data spec
through the task's own network, once, after training. Apart from :mod:`imgzoo.domain` because it
builds a task from its weights (:func:`imgzoo.pipeline.build_task`), which reads the statistics
back through that module."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from imgzoo.data.spec import open_dataset
from imgzoo.domain import fit_domain_statistics, write_domain_statistics
from imgzoo.pipeline import build_task

__all__ = ["fit_weights_domain"]


def fit_weights_domain(
    task: str,
    weights: str | Path,
    *,
    data: str = "minifigs:n=500,seed=2",
    check_data: str = "minifigs:n=200,seed=3",
    resolution: int = 256,
    rank: int = 8,
) -> str:
    """Fit ``task``'s domain statistics for the weights file ``weights`` on the pictures of the data
    spec ``data`` (made into the task's inputs by ``task.degrade``), with fade thresholds from
    ``check_data``, and store them in that file; return its new sha256. For a weights file trained
    later, run it again::

        from imgzoo.training.domain import fit_weights_domain
        print(fit_weights_domain("edges2photo", "new.safetensors"))  # its new sha256
    """
    task_object, models, _ = build_task(task, weights=str(weights))
    for model in models.values():
        model.eval()
    inference_models = task_object.prepare_inference(models)

    def pictures(spec: str) -> Iterable[np.ndarray]:
        dataset = open_dataset(spec, resolution=resolution)
        for index in range(len(dataset)):
            # Seeded by the picture, as full-resolution evaluation seeds it.
            given = task_object.degrade(dataset[index].image, np.random.default_rng(index))
            yield given[0] if isinstance(given, tuple) else given

    statistics = fit_domain_statistics(
        task_object,
        inference_models,
        pictures(data),
        pictures(check_data),
        rank=rank,
        fitted_on=f"{data}; thresholds from {check_data}; at {resolution} px",
    )
    return write_domain_statistics(weights, statistics)
