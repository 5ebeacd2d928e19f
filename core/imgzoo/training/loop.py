"""The :class:`Trainer`: one training loop for every task.

The task decides *what* a step is (:meth:`imgzoo.Task.training_step`, which calls
``ctx.optimize(name, loss)`` once per optimizer, in its own order); the trainer owns *how*:
devices and precision, gradient accumulation and averaging over processes, clipping, the
learning-rate schedule, evaluation, pictures, logs, checkpoints and the exported weights.
See :mod:`imgzoo.training` for the contract, and :mod:`imgzoo.training.batches` for why a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import torch
from tqdm import tqdm

from imgzoo import __version__
from imgzoo.data.base import Dataset
from imgzoo.errors import ConfigError, DataError, ZooError
from imgzoo.files import write_atomically
from imgzoo.runtime import autocast
from imgzoo.task import Task
from imgzoo.training import distributed, evaluation
from imgzoo.training.batches import (
    STOP_SIGNALS,
    BatchPlan,
    PairDataset,
    auto_workers,
    hold_stop_signals,
    pair_transforms,
    train_loader,
)
from imgzoo.training.checkpoint import (
    checkpoint_dir,
    host_rng_state,
    join_tensors,
    list_checkpoints,
    prune_checkpoints,
    restore_host_rng_state,
    resume_point,
    split_tensors,
    write_best_checkpoint,
    write_checkpoint,
)
from imgzoo.training.config import TrainConfig
from imgzoo.training.evaluation import GridRow, measure
from imgzoo.training.lock import lock_run_folder
from imgzoo.training.report import MetricsLog, registry_entry, save_grid, save_loss_curve
from imgzoo.training.schedule import lr_factor
from imgzoo.weights import load_state, save_weights, state_tensors, write_failure

if TYPE_CHECKING:
    pass

__all__ = ["Callback", "TrainResult", "Trainer", "TrainingInterrupted", "prepare_output_dir"]


# Settings whose change makes a resumed run differ from an uninterrupted one.
_EXACTNESS_SETTINGS = ("batch_size", "grad_accum", "seed", "precision", "lr_schedule", "decay_start")


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


class _StepContext:
    """The :class:`imgzoo.StepContext` the trainer hands to ``task.training_step``."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.step = 0
        self.micro_step = 0
        self.stepped: list[str] = []

    def optimize(self, optimizer: str, loss: torch.Tensor) -> torch.Tensor:
        """Backpropagate ``loss`` into the parameters of ``optimizer`` only (so a GAN's generator
        loss leaves its critic's gradients alone), and step that optimizer when the accumulation
        window closes. Returns ``loss`` detached."""
        trainer = self.trainer
        if optimizer not in trainer.optimizers:
            raise ZooError(
                f"task {trainer.task.name!r} asked to optimize {optimizer!r}, but its configure_optimizers() "
                f"made {sorted(trainer.optimizers)}"
            )
        if optimizer in self.stepped:
            raise ZooError(f"task {trainer.task.name!r} optimized {optimizer!r} twice in one training_step")
        scaled = trainer.scaler.scale(loss / trainer.config.grad_accum)
        # Backward runs outside autocast; it follows the forward pass's dtypes anyway.
        with torch.autocast(trainer.device.type, enabled=False):
            torch.autograd.backward(scaled, inputs=trainer.parameters[optimizer])
        if self.micro_step == trainer.config.grad_accum - 1:
            trainer._apply_gradients(optimizer)
            self.stepped.append(optimizer)
        return loss.detach()


class Trainer:
    """Trains ``models`` for ``task`` on ``train_data``, evaluating on ``val_data``.

    ``train_data`` and ``val_data`` are imgzoo datasets of :class:`~imgzoo.data.Sample`; the
    trainer augments them (``task.augmentations()``; validation gets the same sizing, centre
    cropped) and turns them into tensors with ``task.make_pair``. Everything is written under
    ``out_dir``. Construction checks the settings, the data and the output folder, so that a
    mistake fails before training starts. :meth:`fit` runs the loop.
    """

    def __init__(
        self,
        task: Task,
        models: Mapping[str, torch.nn.Module],
        train_data: Dataset,
        val_data: Dataset,
        config: TrainConfig,
        out_dir: str | os.PathLike[str],
        callbacks: Sequence[Callback] = (),
        *,
        data_spec: str = "",
        started_from: Mapping[str, str] | None = None,
    ) -> None:
        self.task = task
        self.models = dict(models)
        self.config = config
        self.callbacks = list(callbacks)
        self.data_spec = data_spec
        self.started_from = dict(started_from) if started_from else None
        self.group, self.device = distributed.setup(config.device)
        self.out_dir = Path(out_dir).expanduser()

        # Data: training pairs augmented as the task allows, validation pairs only sized.
        train_transform, val_transform = pair_transforms(task)
        self.train_pairs = PairDataset(train_data, task, train_transform, seed=config.seed)
        self.val_pairs = PairDataset(val_data, task, val_transform, seed=config.seed)
        self.plan = BatchPlan(
            len(train_data), config.batch_size, config.grad_accum, self.group.world_size, config.seed
        )
        self._check_plan()
        self.total_steps = (
            config.steps if config.steps is not None else (config.epochs or 0) * self.plan.steps_per_epoch
        )
        self._check_pairs()

        # Models, optimizers and the fp16 loss scaler.
        for model in self.models.values():
            model.to(self.device).train()
        self.optimizers = dict(task.configure_optimizers(self.models))
        self.base_lrs = {
            name: [float(g["lr"]) for g in opt.param_groups] for name, opt in self.optimizers.items()
        }
        self.parameters = {
            name: [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
            for name, opt in self.optimizers.items()
        }
        for name, params in self.parameters.items():
            if not params:
                raise ZooError(f"task {task.name!r}: optimizer {name!r} has no trainable parameters")
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=config.precision == "fp16" and self.device.type == "cuda"
        )
        # The output folder comes last, so that a mistake found above leaves none behind.
        distributed.check_on_main(lambda: prepare_output_dir(self.out_dir), self.group, self.device)
        distributed.broadcast_models(self.models, self.group)

        # Run state: what checkpoints save besides models and optimizers.
        self.step = 0
        self.metrics: dict[str, float] = {}
        self.best: dict[str, Any] | None = None
        self.evaluated_step = (
            0  # the step of the last evaluation, so a resumed run neither skips nor repeats one
        )
        self.history: list[tuple[int, dict[str, float]]] = []
        self.last_grid: list[GridRow] = []
        self.evaluated_images = 0
        self.log = MetricsLog(self.out_dir / "metrics.jsonl", enabled=self.group.is_main)
        self._stop_requested = False
        self._stop_signal: signal.Signals | None = None
        self._optimizer_stepped = False  # within the current step: the state is half-updated
        self._window: dict[str, Any] = _new_window()
        self._totals = {"time": 0.0, "wait": 0.0, "images": 0}

    # ── the loop ──────────────────────────────────────────────────────────────────────────────
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train to ``total_steps``; with ``resume``, continue exactly from the newest checkpoint
        in ``out_dir``. Ctrl-C or SIGTERM finishes the step, writes a checkpoint and raises
        :class:`TrainingInterrupted`; a loss or parameter that is not finite raises ZooError
        before anything of it is saved. Another run training in ``out_dir`` is a ZooError."""
        with contextlib.ExitStack() as held:
            # Before anything is read: the other run may be writing it.
            distributed.check_on_main(
                lambda: held.enter_context(lock_run_folder(self.out_dir)), self.group, self.device
            )
            # From the start, so that a stop signal during set-up is a request like any other.
            held.enter_context(_interrupt_handler(self))
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        cfg, group = self.config, self.group
        start = self._restore() if resume else self._start_fresh()
        workers = auto_workers(group.world_size) if cfg.num_workers == "auto" else cfg.num_workers
        loader = train_loader(
            self.train_pairs,
            self.plan,
            start=start,
            rank=group.rank,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
        )
        with hold_stop_signals():  # until each loader worker has its own handlers
            batches = iter(loader)
        bar = tqdm(
            total=self.total_steps,
            initial=start,
            desc=self.task.name,
            unit="step",
            dynamic_ncols=True,
            disable=True if not (group.is_main and cfg.progress) else None,  # None: only on a terminal
        )
        clean_exit = False
        try:
            with _deterministic(cfg.deterministic, self.device):
                self._call("on_train_start")
                self._train(start, batches, bar)
                result = self._finish()
            clean_exit = True
        except TrainingInterrupted:
            clean_exit = True
            raise
        except KeyboardInterrupt as error:  # a second Ctrl-C, or one raised inside the step
            self._stop_interrupted(error)
        finally:
            bar.close()
            del batches, loader  # stops the loader's worker processes
            distributed.teardown(group, wait=clean_exit)
        return result

    def _train(
        self, start: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], bar: tqdm[Any]
    ) -> None:
        """The loop: from step ``start`` to ``total_steps``, one optimizer step per iteration."""
        cfg, group, ctx = self.config, self.group, _StepContext(self)
        while self.step < self.total_steps:
            step = self.step

            # ── learning rate: a pure function of the step ──
            factor = lr_factor(step, self.total_steps, schedule=cfg.lr_schedule, decay_start=cfg.decay_start)
            for name, optimizer in self.optimizers.items():
                for param_group, base_lr in zip(optimizer.param_groups, self.base_lrs[name], strict=True):
                    param_group["lr"] = base_lr * factor

            # ── evaluate and checkpoint (the end of the run does both after the loop) ──
            # Never at step 0: an untrained model's metrics cost a pass over the validation
            # split and say nothing about the run.
            if step % cfg.eval_every == 0 and step > self.evaluated_step:
                self._evaluate_and_report()
            if step > start and step % cfg.checkpoint_every == 0:
                # Main writes; a failure there (weights no longer finite, a full disk) stops
                # every process at once instead of leaving them in the next collective.
                distributed.check_on_main(self._save_checkpoint, group, self.device)

            # ── forward / backward: the task's step. Clip, step and zero grads happen in
            #    ctx.optimize -> _apply_gradients, as each optimizer's accumulation window closes ──
            tick = time.perf_counter()
            # Randomness inside a step (dropout, a GAN's noise) depends on (seed, step, process)
            # only, so resuming cannot shift it.
            torch.manual_seed(_step_seed(cfg.seed, step, group.rank))
            ctx.step, ctx.stepped = step, []
            losses: dict[str, torch.Tensor] = {}
            for micro_step in range(cfg.grad_accum):
                waiting = time.perf_counter()
                inputs, targets = self._next_batch(batches, step, micro_step)
                inputs = inputs.to(self.device, non_blocking=True)
                targets = targets.to(self.device, non_blocking=True)
                self._window["wait"] += time.perf_counter() - waiting
                ctx.micro_step = micro_step
                with autocast(self.device, cfg.precision):
                    step_losses = self.task.training_step(self.models, (inputs, targets), ctx)
                for name, value in step_losses.items():
                    value = torch.as_tensor(value).detach().float() / cfg.grad_accum
                    losses[name] = losses[name] + value if name in losses else value
            if not ctx.stepped:
                raise ZooError(
                    f"task {self.task.name!r}: training_step() stepped no optimizer; "
                    "it must call ctx.optimize(name, loss)"
                )
            self.scaler.update()
            self.step, self._optimizer_stepped = step + 1, False

            # ── log ──
            self._window["time"] += time.perf_counter() - tick
            self._window["steps"] += 1
            for name, value in losses.items():
                self._window["losses"][name] = self._window["losses"].get(name, 0.0) + value
            self._window["per_step"].append((self.step, losses))
            if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                self._log_training(bar)
            bar.update(1)
            self._call("on_step_end", self.step, losses)

            # ── stop: on Ctrl-C, SIGTERM or a callback's KeyboardInterrupt, in every process at once ──
            if distributed.any_process(self._stop_requested, group, self.device):
                self._stop_interrupted()

    def _next_batch(
        self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], step: int, micro_step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loader's next micro-batch, which is micro-batch ``micro_step`` of step ``step``.

        An error raised in a loader worker reaches this process as torch's copy of it: its type
        (or a RuntimeError) with the worker's whole traceback as the message. Batches are a pure
        function of the step, so reading the failed one again here raises the original error,
        with its own message.
        """
        try:
            return next(batches)
        except Exception as error:
            if "in DataLoader worker process" not in str(error).partition("\n")[0]:
                raise
            try:
                for key in self.plan.micro_batches(step, self.group.rank)[micro_step]:
                    self.train_pairs[key]
            except Exception as original:
                raise original from None
            raise  # it does not happen again here: torch's copy is all there is

    def _apply_gradients(self, name: str) -> None:
        """The end of an accumulation window for one optimizer (called from ``ctx.optimize``)."""
        optimizer, params = self.optimizers[name], self.parameters[name]
        # ── synchronise: every process gets the gradient of the whole global batch ──
        distributed.average_gradients(params, self.group)
        # ── clip ──
        if self.config.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        # ── step ──
        self.scaler.step(optimizer)
        self._optimizer_stepped = True
        # ── zero grads ──
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Metrics on the validation split, averaged over its images (train modes restored after).

        The picture-grid rows of the first ``grid_rows`` images are kept in ``last_grid``; how
        many images were measured (``eval_samples``) in ``evaluated_images``.
        """
        cfg = self.config
        count = evaluation.evaluation_size(
            cfg.eval_samples,
            available=len(self.val_pairs),
            trained_images=self.total_steps * cfg.batch_size,
        )
        modes = {module: module.training for model in self.models.values() for module in model.modules()}
        for model in self.models.values():
            model.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            # A task whose predictions are random gets the same draws at every evaluation.
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(cfg.seed)
                metrics, self.last_grid = measure(
                    self.task,
                    self.models,
                    self.val_pairs,
                    indices=evaluation.spread_indices(count, len(self.val_pairs)),
                    batch_size=cfg.batch_size,
                    device=self.device,
                    precision=cfg.precision,
                    keep=cfg.grid_rows,
                )
        finally:
            for module, training in modes.items():
                module.training = training
        self.evaluated_images = count
        return metrics

    # ── phases of the loop ────────────────────────────────────────────────────────────────────
    def _evaluate_and_report(self) -> None:
        if not len(self.val_pairs) or not self.group.is_main:
            return
        metrics = self.evaluate()
        self.metrics, self.evaluated_step = metrics, self.step
        improved = self._update_best(metrics)
        self.log.write(
            {
                "event": "eval",
                "step": self.step,
                "images": self.evaluated_images,
                "metrics": metrics,
                "best": improved,
            }
        )
        save_grid(self.out_dir / "samples" / f"step-{self.step:06d}.png", self.last_grid)
        save_loss_curve(self.out_dir / "loss.png", self.history)
        self._call("on_evaluate", self.step, metrics)
        if improved:
            self._save_checkpoint(best=True)

    def _update_best(self, metrics: Mapping[str, float]) -> bool:
        metric, mode = self.task.primary_metric
        value = metrics.get(metric)
        if value is None:
            warnings.warn(
                f"task {self.task.name!r}: primary metric {metric!r} is not among its metrics "
                f"{sorted(metrics)}; no best checkpoint is kept",
                stacklevel=2,
            )
            return False
        if math.isnan(value):
            return False
        if self.best is not None and not (
            value > self.best["value"] if mode == "max" else value < self.best["value"]
        ):
            return False
        self.best = {"metric": metric, "mode": mode, "value": float(value), "step": self.step}
        return True

    def _log_training(self, bar: tqdm[Any]) -> None:
        window, self._window = self._window, _new_window()
        names = sorted(window["losses"])
        losses: dict[str, float] = {}
        if names:
            stacked = torch.stack([window["losses"][name] for name in names]) / window["steps"]
            losses = dict(
                zip(names, distributed.mean_over_processes(stacked, self.group).tolist(), strict=True)
            )
        if not all(map(math.isfinite, losses.values())):
            # The averages are the same in every process, so every process stops here.
            first = self.step - window["steps"] + 1
            raise self._diverged(window, f"the mean losses of steps {first}-{self.step} are {losses}")
        images = window["steps"] * self.config.batch_size
        for key, value in (("time", window["time"]), ("wait", window["wait"]), ("images", images)):
            self._totals[key] += value
        speed = images / max(window["time"], 1e-9)
        wait = window["wait"] / max(window["time"], 1e-9)
        lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        self.history.append((self.step, losses))
        self.log.write(
            {
                "event": "train",
                "step": self.step,
                "epoch": round(self.step / self.plan.steps_per_epoch, 4),
                "losses": losses,
                "lr": lrs,
                "images_per_s": round(speed, 2),
                "data_wait": round(wait, 4),
            }
        )
        bar.set_postfix({**{name: f"{value:.4g}" for name, value in losses.items()}, "img/s": f"{speed:.1f}"})

    def _finish(self) -> TrainResult:
        """After the last step: evaluate, checkpoint, export the weights and the registry entry."""
        result = TrainResult(
            task=self.task.name,
            out_dir=self.out_dir,
            steps=self.step,
            epochs=self.step / self.plan.steps_per_epoch,
        )
        if self.group.is_main:
            if self.evaluated_step < self.step or not self.metrics:
                self._evaluate_and_report()
            result.checkpoint = self._save_checkpoint()
            save_loss_curve(self.out_dir / "loss.png", self.history)
            result.weights, result.sha256, result.registry_entry = self._export()
        result.metrics, result.best = dict(self.metrics), self.best
        totals = self._totals
        result.elapsed_s = totals["time"]
        result.images_per_s = totals["images"] / max(totals["time"], 1e-9)
        result.data_wait_fraction = totals["wait"] / max(totals["time"], 1e-9)
        self._call("on_train_end", result)
        return result

    def _stop_interrupted(self, error: KeyboardInterrupt | None = None) -> NoReturn:
        """Write a checkpoint of the last complete step and raise TrainingInterrupted."""
        if self._optimizer_stepped or (error is not None and self.group.enabled):
            # Stopped halfway through a step (or in one process only): this state cannot be resumed.
            found = list_checkpoints(self.out_dir)
            last = found[-1][1] if found else None
            where = f"resume from the last checkpoint, {last}" if last else "no checkpoint was written yet"
            raise TrainingInterrupted(
                f"training stopped in the middle of step {self.step + 1}: {where}",
                step=found[-1][0] if found else 0,
                checkpoint=last,
                out_dir=self.out_dir,
                signal_number=self._stop_signal,
            ) from error
        # Only the main process writes; the others name the folder it writes.
        path = self._save_checkpoint() if self.group.is_main else checkpoint_dir(self.out_dir, self.step)
        cause = f" by {self._stop_signal.name}" if self._stop_signal else ""
        raise TrainingInterrupted(
            f"training interrupted{cause} at step {self.step}; checkpoint saved to {path}",
            step=self.step,
            checkpoint=path,
            out_dir=self.out_dir,
            signal_number=self._stop_signal,
        ) from error

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(self, *args)
            except KeyboardInterrupt:
                self._stop_requested = True

    # ── checkpoints ──────────────────────────────────────────────────────────────────────────
    def _save_checkpoint(self, *, best: bool = False) -> Path:
        """Write the full state after ``self.step`` steps (main process only)."""
        self._check_weights_finite()
        tensors: dict[str, torch.Tensor] = {}
        for name, model in self.models.items():
            tensors.update(state_tensors(model, prefix=f"model.{name}"))
        optimizers = {
            name: split_tensors(opt.state_dict(), f"optimizer.{name}", tensors)
            for name, opt in self.optimizers.items()
        }
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        epoch, position = self.plan.position(self.step)
        state = {
            "task": self.task.name,
            "task_config": self.task.config.model_dump(mode="json"),
            "train_config": self.config.model_dump(mode="json"),
            "step": self.step,
            "epoch": epoch,
            "batch_in_epoch": position,
            "steps_per_epoch": self.plan.steps_per_epoch,
            "world_size": self.group.world_size,
            "optimizers": optimizers,
            "scaler": self.scaler.state_dict(),
            "schedule": {
                "name": self.config.lr_schedule,
                "decay_start": self.config.decay_start,
                "total_steps": self.total_steps,
                "base_lrs": self.base_lrs,
            },
            "rng": host_rng_state(),
            "task_state": self.task.state_dict(),
            "best": self.best,
            "started_from": self.started_from,
            "evaluated_step": self.evaluated_step,
            "metrics": self.metrics,
            "data": self._data_info(),
            "totals": self._totals,
        }
        if best:
            folder = write_best_checkpoint(self.out_dir, self.step, tensors, state)
        else:
            folder = write_checkpoint(checkpoint_dir(self.out_dir, self.step), tensors, state)
            prune_checkpoints(self.out_dir, self.config.keep_last, newest=self.step)
        self._call("on_checkpoint", self.step, folder)
        return folder

    def _check_weights_finite(self) -> None:
        """Raise ZooError if a weight or optimizer state is NaN or infinite, so that a diverged run
        never overwrites a good checkpoint nor exports garbage. One synchronisation per save."""
        states = {f"model {name!r}": model.state_dict() for name, model in self.models.items()}
        states.update({f"optimizer {name!r}": _state_tensors(opt) for name, opt in self.optimizers.items()})
        flags = [
            torch.isfinite(tensor).all()
            for state in states.values()
            for tensor in state.values()
            if tensor.is_floating_point()
        ]
        if not flags or bool(torch.stack(flags).all()):
            return
        owner, key = next(
            (owner, key)
            for owner, state in states.items()
            for key, tensor in state.items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
        )
        raise self._diverged(self._window, f"{key} of {owner} is not finite after step {self.step}")

    def _diverged(self, window: Mapping[str, Any], fallback: str) -> ZooError:
        """The error that stops a run whose losses or weights are no longer finite: it names the
        first step of ``window`` with a non-finite loss in this process, else ``fallback``."""
        where = fallback
        for step, losses in window["per_step"]:
            bad = {name: float(value) for name, value in losses.items() if not math.isfinite(value)}
            if bad:
                name, value = next(iter(bad.items()))
                where = f"loss {name!r} is {value} at step {step}"
                break
        found = list_checkpoints(self.out_dir)
        kept = f"the last checkpoint, {found[-1][1]}, is kept" if found else "no checkpoint was written"
        return ZooError(
            f"training diverged: {where}; {kept} and no weights were exported. "
            "Lower the learning rate or set train.grad_clip, then train again (or --resume with "
            "--set learning_rate=...)"
        )

    def _start_fresh(self) -> int:
        distributed.check_on_main(self._check_no_earlier_run, self.group, self.device)
        if self.group.is_main:
            self.log.keep_until(-1)  # a log left by a run that never reached a checkpoint
        return 0

    def _check_no_earlier_run(self) -> None:
        found = list_checkpoints(self.out_dir)
        if found:
            raise ZooError(
                f"{self.out_dir} already holds a training run (checkpoint {found[-1][1].name}): "
                "resume it with --resume (resume=True), or choose another --out"
            )

    def _restore(self) -> int:
        """Load the newest checkpoint into the models, optimizers and run state; return its step."""
        folder, tensors, state = resume_point(self.out_dir, self.task.name, warn=self.group.is_main)
        for name, model in self.models.items():
            load_state(model, tensors, prefix=f"model.{name}", path=folder)
        for name, optimizer in self.optimizers.items():
            if name not in state["optimizers"]:
                raise ZooError(
                    f"checkpoint {folder} has no state for optimizer {name!r} of task {self.task.name!r}"
                )
            optimizer.load_state_dict(join_tensors(state["optimizers"][name], tensors))
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(tensors["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        restore_host_rng_state(state["rng"])
        self.task.load_state_dict(state.get("task_state") or {})
        self.step = int(state["step"])
        self.best, self.metrics = state.get("best"), dict(state.get("metrics") or {})
        self.started_from = state.get("started_from")
        self.evaluated_step = int(state.get("evaluated_step", 0))
        self._totals = dict(state.get("totals") or self._totals)
        events = self.log.keep_until(self.step)
        self.history = [(event["step"], event["losses"]) for event in events if event.get("event") == "train"]
        self._warn_about_changes(state)
        return self.step

    def _warn_about_changes(self, state: Mapping[str, Any]) -> None:
        previous = state.get("train_config", {})
        changed = [
            key
            for key in _EXACTNESS_SETTINGS
            if key in previous and previous[key] != getattr(self.config, key)
        ]
        if state.get("world_size") != self.group.world_size and self.group.world_size > 1:
            changed.append("the number of processes")
        if state.get("data", {}).get("train_size") != len(self.train_pairs):
            changed.append("the size of the training split")
        if changed and self.group.is_main:
            warnings.warn(
                f"resuming with a different {', '.join(changed)}: "
                "the run will not match an uninterrupted one",
                stacklevel=3,
            )

    # ── the results ──────────────────────────────────────────────────────────────────────────
    def _export(self) -> tuple[Path, str, Path]:
        """Write ``TASK.safetensors`` (self-describing) and its registry entry beside it."""
        task = self.task
        names = list(self.models) if self.config.export == "all" else [task.inference_model]
        tensors: dict[str, torch.Tensor] = {}
        for name in names:
            tensors.update(state_tensors(self.models[name], prefix=name))
        recipe = self._recipe()
        metadata = {
            "task": task.name,
            "config": task.config.model_dump(mode="json"),
            "recipe": recipe,
            "metrics": self.metrics,
            "dataset": self._data_info(),
            "code_version": code_version(),
        }
        path = self.out_dir / f"{task.name}.safetensors"
        dtype = torch.float16 if self.config.export_dtype == "fp16" else None
        sha256 = save_weights(path, tensors, metadata=metadata, dtype=dtype)
        name = re.sub(r"[^a-z0-9._-]+", "-", self.out_dir.resolve().name.lower()).strip("-.") or "trained"
        entry = registry_entry(
            task.name, name, file=path.name, sha256=sha256, recipe=recipe, metrics=self.metrics
        )
        entry_path = self.out_dir / "registry-entry.toml"
        try:
            write_atomically(entry_path, entry.encode("utf-8"))
        except OSError as error:
            raise ZooError(write_failure(entry_path, error, instead="choose another --out")) from error
        return path, sha256, entry_path

    def _recipe(self) -> dict[str, Any]:
        recipe = self.config.model_dump(
            mode="json", exclude={"device", "progress", "num_workers", "export", "export_dtype"}
        )
        recipe.update(steps=self.step, epochs=None, data=self.data_spec, processes=self.group.world_size)
        if self.started_from:
            recipe["started_from"] = self.started_from
        recipe["optimizers"] = {
            name: {"class": type(opt).__name__, "lr": lrs[0] if len(lrs) == 1 else lrs}
            for (name, opt), lrs in zip(self.optimizers.items(), self.base_lrs.values(), strict=True)
        }
        return recipe

    def _data_info(self) -> dict[str, Any]:
        return {
            "spec": self.data_spec,
            "train_size": len(self.train_pairs),
            "val_size": len(self.val_pairs),
            "image_size": self.task.config.image_size,
        }

    # ── checks before training ───────────────────────────────────────────────────────────────
    def _check_plan(self) -> None:
        cfg, plan = self.config, self.plan
        shards = cfg.grad_accum * self.group.world_size
        if cfg.batch_size % shards:
            raise ConfigError(
                self.task.name,
                [
                    (
                        "train.batch_size",
                        f"{cfg.batch_size} must be a multiple of grad_accum x processes = {shards}",
                    )
                ],
            )
        if plan.steps_per_epoch == 0:
            raise DataError(
                f"the training split has {plan.dataset_size} image(s), fewer than one batch of "
                f"{cfg.batch_size}: add images, or lower train.batch_size or train.val_fraction"
            )

    def _check_pairs(self) -> None:
        """Run the first training item through the task now, so a broken pipeline fails early."""
        pair = self.train_pairs[(0, 0)]
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(t, torch.Tensor) and t.ndim == 3 for t in pair)
        ):
            raise ZooError(
                f"task {self.task.name!r}: make_pair() must return two CxHxW tensors (input, target)"
            )


def prepare_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` and make sure files can be written there, or raise ZooError naming it."""
    folder = Path(out_dir).expanduser()
    probe = folder / f".imgzoo-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ZooError(
            f"cannot write to the output folder {folder}: {reason}; choose another --out"
        ) from None
    return folder


def code_version() -> dict[str, str]:
    """imgzoo's version, and the git commit when imgzoo runs from a git checkout of itself.

    An installed imgzoo (say, in a virtual environment that lies inside another project's
    repository) records no commit: the commit of whatever repository holds it would mislead.
    """
    version = {"imgzoo": __version__}
    # A checkout holds this file as ROOT/core/imgzoo/training/loop.py, ROOT being the top of the work tree.
    root = Path(__file__).resolve().parents[3]
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return version
    lines = completed.stdout.splitlines()
    if completed.returncode == 0 and len(lines) == 2 and Path(lines[0]).resolve() == root:
        version["git"] = lines[1]
    return version


def _new_window() -> dict[str, Any]:
    # per_step: (step, losses) of each step, kept on the device, to name the step that diverged.
    return {"losses": {}, "per_step": [], "steps": 0, "time": 0.0, "wait": 0.0}


def _state_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state tensors (Adam's moments...), by a readable key."""
    return {
        f"state {index}.{key}": value
        for index, (_, state) in enumerate(optimizer.state.items())
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence((seed, 2, step, rank)).generate_state(1, np.uint64)[0] >> np.uint64(1))


@contextlib.contextmanager
def _deterministic(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the duration of a run (the global flags are restored after)."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # input sizes are fixed: let cuDNN pick the fastest kernels
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]


@contextlib.contextmanager
def _interrupt_handler(trainer: Trainer) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM asks the loop to stop after the current step; a second stops
    at once. SIGTERM is how kill, systemd, docker stop, Kubernetes and batch schedulers stop a
    process, before they send SIGKILL after a grace period."""
    # Python only delivers signals to the main thread, and only it may install handlers.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: Any) -> None:
        if trainer._stop_requested:
            raise KeyboardInterrupt
        trainer._stop_requested, trainer._stop_signal = True, signal.Signals(signum)
        if trainer.group.is_main:
            again = "Ctrl-C" if signum == signal.SIGINT else "again"
            print(
                f"\n{signal.Signals(signum).name}: stopping after this step to save a checkpoint "
                f"({again} to quit at once)",
                file=sys.stderr,
            )

    previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: the handler was not installed from Python, and cannot be put back.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
