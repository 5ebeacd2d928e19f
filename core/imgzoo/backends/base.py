"""The interface every inference backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch

    from imgzoo.pipeline import LoadedWeights
    from imgzoo.task import Task

__all__ = ["Backend"]


class Backend:
    """Runs one task's forward pass on batches, on a device and at a precision.

    A subclass sets :attr:`name` and implements :meth:`forward`; its constructor gets the task,
    its models as built and loaded (on the CPU, or on the device :meth:`choose_device` named, in
    eval mode) and where their weights came from, and settles :attr:`device`, :attr:`precision`
    and :attr:`precision_reason`. The pipeline calls :meth:`forward` from one thread at a time.
    """

    name: ClassVar[str]

    def __init__(
        self,
        task: Task,
        models: Mapping[str, torch.nn.Module],
        *,
        device: torch.device,
        precision: str,
        weights: LoadedWeights | None,
    ) -> None:
        self.task = task
        self.device = device
        self.precision = precision
        """The precision inference runs at (never ``"auto"``)."""
        self.precision_reason: str | None = None
        """Why, when ``"auto"`` or the backend chose it."""

    @classmethod
    def choose_device(cls, device: str) -> str:
        """The device to build the models on for the user's ``device`` (``"auto"`` included),
        checked before any model is built: a backend that needs an optional package says so here."""
        return device

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The task's forward pass on ``batch`` (NxCxHxW, on the CPU), float32 on the CPU."""
        raise NotImplementedError(f"backend {self.name!r} does not implement forward()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, precision={self.precision!r})"
