"""ONNX Runtime sessions on exported files, and the optional packages they need.

onnxruntime (and onnx, which PyTorch's exporter needs) are optional dependencies:
``pip install 'imgzoo[onnx]'``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo.errors import MissingExtraError

__all__ = ["OnnxRuntimeModel", "open_session", "require_onnxruntime", "require_package"]


def require_onnxruntime(purpose: str = "for backend='onnxruntime'") -> Any:
    """The ``onnxruntime`` module, or a one-line error naming the extra that installs it."""
    return require_package("onnxruntime", purpose)


def require_package(name: str, purpose: str) -> Any:
    """The module ``name`` of the ``onnx`` extra, or a one-line error naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingExtraError(name, extra="onnx", purpose=purpose) from None


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
