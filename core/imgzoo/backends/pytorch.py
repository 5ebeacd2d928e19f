"""The ``torch`` backend: the task's forward pass in PyTorch, on any device torch has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from imgzoo.backends.base import Backend
from imgzoo.runtime import autocast, resolve_precision

if TYPE_CHECKING:
    from imgzoo.pipeline import LoadedWeights
    from imgzoo.task import Task

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """``task.forward`` on the models of ``task.prepare_inference``, made once here, under
    autocast at the chosen precision (``"auto"``: bf16 where the device computes it natively)."""

    name = "torch"

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
        self.precision, self.precision_reason = resolve_precision(precision, device)
        self.inference_models = dict(task.prepare_inference(models))
        """What the forward pass runs (changes to the loaded models afterwards do not reach it)."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.device, self.precision):
            outputs = self.task.forward(self.inference_models, batch.to(self.device, non_blocking=True))
        return outputs.float().cpu()
