"""An optional base class for task models: a ``torch.nn.Module`` with a few conveniences.

A task's models may be any ``torch.nn.Module``; weights are saved and loaded by the zoo, with
the task's config, in one safetensors format (see :mod:`imgzoo.weights`).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Model"]


class Model(torch.nn.Module):
    """A ``torch.nn.Module`` that keeps the settings it was built from (``self.config``, any
    object or None) and counts its parameters. Nothing requires it."""

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        self.config = config

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
