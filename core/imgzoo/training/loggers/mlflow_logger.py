"""The ``mlflow`` logger (``pip install "imgzoo[mlflow]"``): to ``MLFLOW_TRACKING_URI`` when it
is set, else to a SQLite database at ``OUT/mlflow.db`` (artifacts beside it, in
``OUT/mlartifacts/``). The experiment is named after the task, the run after the output folder."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imgzoo.errors import MissingExtraError
from imgzoo.training.loggers import Logger, LoggerRun

__all__ = ["RUN_FILE", "MlflowLogger"]

RUN_FILE = "mlflow-run.json"
"""Beside the checkpoints: which MLflow run (tracking URI and run id) a resume continues."""
_MAX_PARAM = 500  # MLflow's limit on the length of a param's value


class MlflowLogger(Logger):
    """Scalars as metrics, the run's settings as params, grids and the final files as artifacts.

    The run's id is kept in ``OUT/mlflow-run.json``; a resumed run reopens that run, and logs
    no step the interrupted run already logged (a resume is exact, so the values are the ones
    the interrupted run logged)."""

    name = "mlflow"

    @classmethod
    def check(cls) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise MissingExtraError("mlflow", extra="mlflow", purpose="for the mlflow logger")

    def __init__(self, run: LoggerRun) -> None:
        super().__init__(run)
        from mlflow.tracking import MlflowClient

        out = run.out_dir.resolve()
        record = out / RUN_FILE
        previous = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
        if previous is not None and run.resumed_step is not None:
            uri = previous["tracking_uri"]
        else:
            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        self.logged_until = -1
        if previous is not None and run.resumed_step is not None:
            self.run_id = previous["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            found = self.client.get_run(self.run_id).data.metrics
            self.logged_until = max(
                (m.step for key in found for m in self.client.get_metric_history(self.run_id, key)),
                default=-1,
            )
            return
        experiment = self.client.get_experiment_by_name(run.task)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            experiment_id = self.client.create_experiment(run.task)
        else:
            location = (out / "mlartifacts").as_uri()
            experiment_id = self.client.create_experiment(run.task, artifact_location=location)
        self.run_id = self.client.create_run(experiment_id, run_name=out.name).info.run_id
        record.write_text(json.dumps({"tracking_uri": uri, "run_id": self.run_id}) + "\n", encoding="utf-8")
        from mlflow.entities import Param

        params = [Param(key, _param_text(value)) for key, value in sorted(run.params.items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        if step <= self.logged_until:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_metric_key(key), float(value), now, step) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, step: int, tag: str, path: Path) -> None:
        if step > self.logged_until:
            self.client.log_artifact(self.run_id, str(path), artifact_path=tag)

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:_MAX_PARAM]


def _metric_key(key: str) -> str:
    # MLflow keys allow letters, digits, _ - . space and /; anything else becomes _.
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in key)
