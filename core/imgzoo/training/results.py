"""What a run tells the code that started it: :class:`Callback` hooks while it trains,
:class:`TrainResult` when it ends, :class:`TrainingInterrupted` when it stops early."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from imgzoo.training.loop import Trainer

__all__ = ["Callback", "TrainResult", "TrainingInterrupted"]


class Callback:
    """Hooks into a run: subclass and override the methods you need (they do nothing here).

    ``on_evaluate`` and ``on_checkpoint`` run in the process that evaluates and writes
    checkpoints (the main one); the others run in every process. Raising ``KeyboardInterrupt``
    from a hook stops the run as Ctrl-C does: the step finishes, a checkpoint is written and
    :class:`TrainingInterrupted` is raised.
    """

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step (after a resume has restored the state)."""

    def on_step_end(self, trainer: Trainer, step: int, losses: Mapping[str, torch.Tensor]) -> None:
        """After optimizer step ``step`` (1-based), with its losses (detached, on the device)."""

    def on_evaluate(self, trainer: Trainer, step: int, metrics: Mapping[str, float]) -> None:
        """After an evaluation on the validation split."""

    def on_checkpoint(self, trainer: Trainer, step: int, path: Path) -> None:
        """After a checkpoint folder was written."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After the weights were exported."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped early (Ctrl-C, SIGTERM, or a callback raised ``KeyboardInterrupt``).

    ``checkpoint`` is where the run can be resumed from (``None`` if it cannot), ``step`` the
    optimizer steps it holds, ``signal_number`` the signal that stopped it (``None`` for a
    callback).
    """

    def __init__(
        self,
        message: str,
        *,
        step: int,
        checkpoint: Path | None,
        out_dir: Path,
        signal_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint
        self.out_dir = out_dir
        self.signal_number = signal_number


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` (and :func:`imgzoo.training.train`) return."""

    task: str
    out_dir: Path
    steps: int
    epochs: float
    metrics: dict[str, float] = field(default_factory=dict)
    """The final evaluation on the validation split (empty without one)."""
    best: dict[str, Any] | None = None
    """``{"metric", "mode", "value", "step"}`` of the best evaluation, kept in checkpoints/best."""
    weights: Path | None = None
    sha256: str | None = None
    registry_entry: Path | None = None
    checkpoint: Path | None = None
    images_per_s: float = 0.0
    data_wait_fraction: float = 0.0
    """Share of training time spent waiting for batches (over the whole run, resumes included)."""
    elapsed_s: float = 0.0
