"""One optimizer step: the :class:`imgzoo.StepContext` a task's ``training_step`` receives.

The loop drives a :class:`TrainingStep` through three calls, and reads back two attributes::

    step.begin(n)                           # step n starts
    with step.micro_batch(i):               # i = 0 .. grad_accum - 1
        task.training_step(step.models, batch_i, step)   # the task calls step.optimize(...)
    step.end()                              # every optimizer stepped: update the loss scaler
    step.half_updated                       # an optimizer stepped, but the step is unfinished
    step.models                             # the models as the task calls them

``optimize(name, loss)`` backpropagates into that optimizer's parameters only (so that a GAN's
generator loss leaves its critic's gradients alone); at the last micro-batch it then clips,
steps and zeroes that optimizer. In a distributed run ``step.models`` are wrapped in
``DistributedDataParallel`` (see :mod:`imgzoo.training.distributed`), which averages the
gradients over processes during that last backward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from imgzoo.errors import TaskBugError
from imgzoo.training import distributed
from imgzoo.training.distributed import Distributed

__all__ = ["TrainingStep"]


class TrainingStep:
    """The step context of a run: its optimizers, their parameters, the loss scaler and the
    models as the task's ``training_step`` calls them."""

    def __init__(
        self,
        task_name: str,
        models: Mapping[str, torch.nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        *,
        grad_accum: int,
        grad_clip: float | None,
        group: Distributed,
        device: torch.device,
    ) -> None:
        self.task_name = task_name
        self.optimizers = dict(optimizers)
        self.scaler = scaler
        self.grad_accum, self.grad_clip, self.device = grad_accum, grad_clip, device
        self.parameters = {
            name: [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
            for name, opt in self.optimizers.items()
        }
        for name, params in self.parameters.items():
            if not params:
                raise TaskBugError(task_name, f"made optimizer {name!r} without trainable parameters")
        trained = [param for params in self.parameters.values() for param in params]
        self.models = distributed.wrap_trained_models(models, trained, group, device)
        self.step = 0
        self.micro_step = 0
        self.stepped: list[str] = []
        self.half_updated = False

    def begin(self, step: int) -> None:
        """Optimizer step ``step`` (0-based) starts."""
        self.step, self.micro_step, self.stepped = step, 0, []

    @contextmanager
    def micro_batch(self, micro_step: int) -> Iterator[None]:
        """The task's ``training_step`` on micro-batch ``micro_step`` runs inside: gradients
        are averaged over processes in the last micro-batch's backward pass only."""
        self.micro_step = micro_step
        with distributed.unsynchronised(self.models.values(), enabled=not self._closes_window):
            yield

    def optimize(self, optimizer: str, loss: torch.Tensor) -> torch.Tensor:
        """Backpropagate ``loss`` into the parameters of ``optimizer`` only, and step that
        optimizer when the accumulation window closes. Returns ``loss`` detached."""
        if optimizer not in self.optimizers:
            raise TaskBugError(
                self.task_name,
                f"asked to optimize {optimizer!r}, but its configure_optimizers() "
                f"made {sorted(self.optimizers)}",
            )
        if optimizer in self.stepped:
            raise TaskBugError(self.task_name, f"optimized {optimizer!r} twice in one training_step")
        scaled = self.scaler.scale(loss / self.grad_accum)
        # Backward runs outside autocast; it follows the forward pass's dtypes anyway.
        with torch.autocast(self.device.type, enabled=False):
            torch.autograd.backward(scaled, inputs=self.parameters[optimizer])
        if self._closes_window:
            self._apply_gradients(optimizer)
            self.stepped.append(optimizer)
        return loss.detach()

    def end(self) -> None:
        """After the last micro-batch: every optimizer has stepped; the step is whole again."""
        if not self.stepped:
            raise TaskBugError(
                self.task_name,
                "stepped no optimizer in training_step(), which must call ctx.optimize(name, loss)",
            )
        self.scaler.update()
        self.half_updated = False

    @property
    def _closes_window(self) -> bool:
        return self.micro_step == self.grad_accum - 1

    def _apply_gradients(self, name: str) -> None:
        """The end of an accumulation window for one optimizer; its gradients are already
        averaged over processes (by its model's DistributedDataParallel)."""
        optimizer, params = self.optimizers[name], self.parameters[name]
        # ── clip ──
        if self.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        # ── step ──
        self.scaler.step(optimizer)
        self.half_updated = True
        # ── zero grads ──
        optimizer.zero_grad(set_to_none=True)
