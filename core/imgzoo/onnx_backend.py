"""The ONNX Runtime backend: ``imgzoo.load(task, backend="onnxruntime")``.

The pipeline stays the same, with the task's own preprocessing, batching, tiling and
postprocessing; only the forward pass runs in an ONNX Runtime session (fp32, on the CPU)
instead of PyTorch. The graph is exported once (see :mod:`imgzoo.exporting`, checked against
PyTorch) into ``cache_dir()/onnx``, under a name derived from the weights' sha256, the task's
config and the imgzoo and torch versions, next to a record of its own sha256: a file that is
missing, damaged or replaced is exported again, a valid one never is.

onnxruntime (and onnx, which PyTorch's exporter needs) are optional dependencies:
``pip install 'imgzoo[onnx]'``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from imgzoo import __version__
from imgzoo.errors import BackendError, MissingExtraError
from imgzoo.files import write_atomically
from imgzoo.weights import cache_dir, content_digest, sha256_file, state_tensors

if TYPE_CHECKING:
    from imgzoo.pipeline import Pipeline

__all__ = [
    "BACKEND",
    "OnnxRuntimeModel",
    "cached_model",
    "open_session",
    "require_onnxruntime",
    "require_package",
    "resolve_precision",
]

BACKEND = "onnxruntime"
PRECISION_REASON = "ONNX Runtime runs fp32 on the CPU"
_CACHE_LAYOUT = 1  # bumped when what a cached file holds changes


def require_onnxruntime(purpose: str = "for backend='onnxruntime'") -> Any:
    """The ``onnxruntime`` module, or a one-line error naming the extra that installs it."""
    return require_package("onnxruntime", purpose)


def require_package(name: str, purpose: str) -> Any:
    """The module ``name`` of the ``onnx`` extra, or a one-line error naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingExtraError(name, extra="onnx", purpose=purpose) from None


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(precision, why) of the ONNX Runtime backend: fp32 on the CPU, whatever ``auto`` would pick."""
    if device.type != "cpu":
        raise BackendError(
            f"backend 'onnxruntime' runs on the CPU only, not on {device}: use device='cpu' (--device cpu), "
            "or backend='torch' for the GPU",
            backend=BACKEND,
        )
    if precision not in ("auto", "fp32"):
        raise BackendError(
            f"backend 'onnxruntime' runs fp32 only, not {precision}: use precision='auto' or 'fp32', "
            "or backend='torch' for reduced precision",
            backend=BACKEND,
        )
    return "fp32", PRECISION_REASON


def open_session(path: str | os.PathLike[str]) -> Any:
    """An ONNX Runtime CPU session on ``path``, with as many threads as torch uses (so that the
    two backends compare on equal terms, and ``OMP_NUM_THREADS`` limits both)."""
    onnxruntime = require_onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are about graph rewrites it chose
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntimeModel:
    """An exported model in an ONNX Runtime session; ``model(batch)`` takes an NCHW tensor (as the
    task's ``preprocess`` makes them) and returns its output, float32 on the CPU."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.session = open_session(self.path)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        output = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(output)

    def __repr__(self) -> str:
        return f"OnnxRuntimeModel({str(self.path)!r})"


def cached_model(pipeline: Pipeline) -> OnnxRuntimeModel:
    """The pipeline's forward pass as an ONNX Runtime model, from the cache or exported into it."""
    from imgzoo.exporting import export_pipeline

    key = cache_key(pipeline)
    graph = cache_dir() / "onnx" / f"{pipeline.task.name}-{key[:16]}.onnx"
    record = graph.with_name(graph.name + ".json")
    if _is_valid(graph, record, key):
        return OnnxRuntimeModel(graph)
    export_pipeline(pipeline, graph, format="onnx")
    write_atomically(record, json.dumps({"key": key, "sha256": sha256_file(graph)}).encode())
    return OnnxRuntimeModel(graph)


def cache_key(pipeline: Pipeline) -> str:
    """What the exported graph depends on, hashed: the weights (their file's sha256, or for an
    untrained model its tensors'), the task's config, the source of the plugin package that
    defines the task (an edited model in a checkout keeps its version number) and the versions
    that made the graph."""
    from imgzoo.exporting import OPSET, origin_metadata

    origin = origin_metadata(pipeline)
    weights = origin["imgzoo.weights_sha256"]
    if not weights:
        tensors = {}
        for name, model in pipeline.models.items():
            tensors.update(state_tensors(model, prefix=name))
        weights = "tensors:" + content_digest(tensors, {})
    described = {
        "layout": _CACHE_LAYOUT,
        "task": pipeline.task.name,
        "config": origin["imgzoo.config"],
        "weights": weights,
        "code": _source_digest(type(pipeline.task)),
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
