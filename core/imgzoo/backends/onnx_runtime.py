"""The ``onnxruntime`` backend: ``imgzoo.load(task, backend="onnxruntime")``.

The pipeline stays the same, with the task's own preprocessing, batching, tiling and
postprocessing; only the forward pass runs in an ONNX Runtime session (fp32, on the CPU)
instead of PyTorch. The graph is exported once (see :mod:`imgzoo.exporting`, checked against
PyTorch) into ``cache_dir()/onnx``, under a name derived from the weights' sha256, the task's
config and the imgzoo and torch versions, next to a record of its own sha256: a file that is
missing, damaged or replaced is exported again, a valid one never is.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imgzoo import __version__
from imgzoo.backends.base import Backend
from imgzoo.backends.onnx_session import OnnxRuntimeModel, require_onnxruntime
from imgzoo.backends.pytorch import TorchBackend
from imgzoo.errors import BackendError
from imgzoo.files import write_atomically
from imgzoo.weights import cache_dir, content_digest, sha256_file, state_tensors

if TYPE_CHECKING:
    from imgzoo.pipeline import LoadedWeights
    from imgzoo.task import Task

__all__ = ["OnnxRuntimeBackend", "cache_key", "cached_model"]

PRECISION_REASON = "ONNX Runtime runs fp32 on the CPU"
_CACHE_LAYOUT = 1  # bumped when what a cached file holds changes


class OnnxRuntimeBackend(Backend):
    """The task's forward pass exported to ONNX (once, cached) and run in ONNX Runtime."""

    name = "onnxruntime"

    @classmethod
    def choose_device(cls, device: str) -> str:
        require_onnxruntime()  # before any model is built
        return "cpu" if device == "auto" else device

    def __init__(
        self,
        task: Task,
        models: Mapping[str, torch.nn.Module],
        *,
        device: torch.device,
        precision: str,
        weights: LoadedWeights | None,
    ) -> None:
        super().__init__(task, models, device=device, precision=precision, weights=weights)
        if device.type != "cpu":
            raise BackendError(
                f"backend 'onnxruntime' runs on the CPU only, not on {device}: use device='cpu' "
                "(--device cpu), or backend='torch' for the GPU",
                backend=self.name,
            )
        if precision not in ("auto", "fp32"):
            raise BackendError(
                f"backend 'onnxruntime' runs fp32 only, not {precision}: use precision='auto' or 'fp32', "
                "or backend='torch' for reduced precision",
                backend=self.name,
            )
        self.precision, self.precision_reason = "fp32", PRECISION_REASON
        self.model = cached_model(task, models, weights)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)


def cached_model(
    task: Task, models: Mapping[str, torch.nn.Module], weights: LoadedWeights | None
) -> OnnxRuntimeModel:
    """The task's forward pass as an ONNX Runtime model, from the cache or exported into it."""
    from imgzoo.exporting import export_pipeline
    from imgzoo.pipeline import Pipeline

    key = cache_key(task, models, weights)
    graph = cache_dir() / "onnx" / f"{task.name}-{key[:16]}.onnx"
    record = graph.with_name(graph.name + ".json")
    if _is_valid(graph, record, key):
        return OnnxRuntimeModel(graph)
    # Exported from the same models in PyTorch, fp32 on the CPU, as `imgzoo export` would.
    reference = TorchBackend(task, models, device=torch.device("cpu"), precision="fp32", weights=weights)
    export_pipeline(Pipeline(task, models, reference, weights=weights), graph, format="onnx")
    write_atomically(record, json.dumps({"key": key, "sha256": sha256_file(graph)}).encode())
    return OnnxRuntimeModel(graph)


def cache_key(task: Task, models: Mapping[str, torch.nn.Module], weights: LoadedWeights | None) -> str:
    """What the exported graph depends on, hashed: the weights (their file's sha256, or for an
    untrained model its tensors'), the task's config, the source of the plugin package that
    defines the task (an edited model in a checkout keeps its version number) and the versions
    that made the graph."""
    from imgzoo.exporting import OPSET

    digest = ""
    if weights is not None:
        digest = weights.sha256 or (sha256_file(weights.path) if weights.path is not None else "")
    if not digest:
        tensors = {}
        for name, model in models.items():
            tensors.update(state_tensors(model, prefix=name))
        digest = "tensors:" + content_digest(tensors, {})
    described = {
        "layout": _CACHE_LAYOUT,
        "task": task.name,
        "config": task.config.model_dump(mode="json"),
        "weights": digest,
        "code": _source_digest(type(task)),
        "imgzoo": __version__,
        "torch": torch.__version__,
        "opset": OPSET,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _source_digest(task_class: type) -> str:
    """sha256 of the Python files of the package that defines ``task_class`` (or of its module,
    outside a package): the code that the exported graph was traced from."""
    top = sys.modules.get(task_class.__module__.partition(".")[0])
    location = getattr(top, "__file__", None)
    if location is None:
        return ""
    path = Path(location)
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _is_valid(graph: Path, record: Path, key: str) -> bool:
    """Whether ``graph`` is the intact export that ``record`` describes, for ``key``."""
    try:
        recorded = json.loads(record.read_text())
        return bool(recorded["key"] == key and graph.is_file() and sha256_file(graph) == recorded["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
