"""The :class:`Trainer`: one training loop for every task. Read :meth:`Trainer._train` first.

The task decides *what* a step is (:meth:`imgzoo.Task.training_step`, which calls
``ctx.optimize(name, loss)`` once per optimizer, in its own order); the trainer owns *how*:
the order of the phases of each step, evaluation, logs, checkpoints and the exported weights.
It delegates each service to its own module: the step context to :mod:`~.step`, the run state
and its checkpoints to :mod:`~.state` and :mod:`~.checkpoint`, the weights file to :mod:`~.export`,
signals and determinism to :mod:`~.environment`, processes to :mod:`~.distributed`, and the
batches to :mod:`~.batches` (which says why a resumed run sees exactly the batches an
uninterrupted one would).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from tqdm import tqdm

from imgzoo.config import flatten_dotted
from imgzoo.data.base import Dataset
from imgzoo.data.split import item_shards
from imgzoo.errors import (
    ConfigError,
    DataError,
    MemoryBudgetError,
    OutputExistsError,
    ResultError,
    TaskBugError,
)
from imgzoo.hardware import is_out_of_memory
from imgzoo.runtime import autocast, resolve_precision
from imgzoo.task import Task
from imgzoo.training import distributed, evaluation
from imgzoo.training.batches import (
    BatchPlan,
    PairDataset,
    auto_workers,
    hold_stop_signals,
    next_batch,
    pair_transforms,
    train_loader,
)
from imgzoo.training.checkpoint import (
    capture_tensors,
    checkpoint_dir,
    first_non_finite,
    host_rng_state,
    list_checkpoints,
    prune_checkpoints,
    restore_tensors,
    resume_point,
    write_best_checkpoint,
    write_checkpoint,
)
from imgzoo.training.config import TrainConfig
from imgzoo.training.environment import StopRequest, deterministic_kernels, prepare_output_dir, step_seed
from imgzoo.training.evaluation import GridRow, measure
from imgzoo.training.export import Exported, recipe, write_weights
from imgzoo.training.lock import lock_run_folder
from imgzoo.training.loggers import Logger, LoggerRun, logger_class, open_loggers
from imgzoo.training.report import MetricsLog, save_grid, save_loss_curve
from imgzoo.training.results import Callback, TrainingInterrupted, TrainResult
from imgzoo.training.schedule import lr_factor
from imgzoo.training.state import RunState
from imgzoo.training.step import TrainingStep

__all__ = ["MIN_VALIDATION_PICTURES", "Trainer"]

MIN_VALIDATION_PICTURES = 16
"""Fewer validation pictures than this give metrics that move by more than a model's progress
between two evaluations: the trainer warns about such a split."""

# log_every="auto": every _LOG_EVERY steps, and at least _MIN_LOG_POINTS times in a short run,
# so that loss.png draws a curve.
_LOG_EVERY, _MIN_LOG_POINTS = 50, 20


@dataclass
class _LogWindow:
    """The steps since the last log line: losses summed on the device, and timings."""

    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    per_step: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)
    """Each step's losses, to name the step that diverged."""
    steps: int = 0
    time: float = 0.0
    wait: float = 0.0


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
        self.callbacks = list(callbacks)
        self.data_spec = data_spec
        self.started_from = dict(started_from) if started_from else None
        self.group, self.device = distributed.setup(config.device)
        # "auto" is settled once, here: checkpoints and the recipe record what ran, so a resume
        # on other hardware keeps the precision (and the exactness) of the run it continues.
        precision, _ = resolve_precision(config.precision, self.device)
        self.config = config = config.model_copy(update={"precision": precision})
        self.out_dir = Path(out_dir).expanduser()

        # Data: training pairs augmented as the task allows, validation pairs only sized.
        train_transform, val_transform = pair_transforms(task)
        self.train_pairs = PairDataset(train_data, task, train_transform, seed=config.seed)
        self.val_pairs = PairDataset(val_data, task, val_transform, seed=config.seed, split="validation")
        self.plan = BatchPlan(
            len(train_data),
            config.batch_size,
            config.grad_accum,
            self.group.world_size,
            config.seed,
            shards=item_shards(train_data),
        )
        self._check_plan()
        self.step_limit = (
            config.steps
            if config.steps is not None
            else config.epochs * self.plan.steps_per_epoch
            if config.epochs is not None
            else None
        )
        """The steps or epochs asked for, in steps; None when only ``max_time`` ends the run."""
        self.total_steps = self.step_limit or 1
        """The steps the run will take: the step limit, or, with a time budget, the steps it
        allows as measured so far (what the schedule, the progress bar and the logs plan for)."""
        self.log_every = config.log_every if config.log_every != "auto" else _LOG_EVERY
        self.eval_count = evaluation.evaluation_size(
            config.eval_samples, available=len(val_data), trained_images=self.total_steps * config.batch_size
        )
        """Validation pictures each evaluation measures (a time budget's run settles it in fit())."""
        self._check_pairs()
        if self.group.is_main:
            self._check_validation_size(len(train_data) + len(val_data), len(val_data))

        # Models, optimizers and the fp16 loss scaler.
        for model in self.models.values():
            model.to(self.device).train()
        self.optimizers = dict(task.configure_optimizers(self.models))
        self.base_lrs = {
            name: [float(g["lr"]) for g in opt.param_groups] for name, opt in self.optimizers.items()
        }
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=config.precision == "fp16" and self.device.type == "cuda"
        )
        # The task's step sees the models through it (wrapped for distributed training).
        self.step_context = self._step_context(self.models, self.optimizers, self.scaler, self.group)
        # Loggers are built in the main process only; a missing package fails here, in seconds.
        self.logger_classes: list[type[Logger]] = []

        def find_loggers() -> None:
            self.logger_classes = [
                logger_class(name, task=task.name) for name in dict.fromkeys(config.loggers)
            ]

        distributed.check_on_main(find_loggers, self.group, self.device)
        self.loggers: list[Logger] = []

        # The output folder comes last, so that a mistake found above leaves none behind.
        distributed.check_on_main(lambda: prepare_output_dir(self.out_dir), self.group, self.device)
        distributed.broadcast_models(self.models, self.group)

        # Run state: what checkpoints save besides models and optimizers.
        self.step = 0
        self.metrics: dict[str, float] = {}
        self.best: dict[str, Any] | None = None
        self.evaluated_step = 0  # so that a resumed run neither skips nor repeats an evaluation
        self.history: list[tuple[int, dict[str, float]]] = []
        self.last_grid: list[GridRow] = []
        self.evaluated_images = 0
        self.log = MetricsLog(self.out_dir / "metrics.jsonl", enabled=self.group.is_main)
        self.stop = StopRequest()
        self._window = _LogWindow()
        self._totals: dict[str, float] = {"time": 0.0, "wait": 0.0, "images": 0, "run_time": 0.0}
        self._clock = time.perf_counter()  # restarted by fit(), less the run time resumed
        self._loop_start: tuple[int, float] = (0, 0.0)  # (step, time) the loop of this process began at
        self._seconds_per_step = 0.0

    # ── the loop ──────────────────────────────────────────────────────────────────────────────
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train to ``total_steps``; with ``resume``, continue exactly from the newest checkpoint
        in ``out_dir``. Ctrl-C or SIGTERM finishes the step, writes a checkpoint and raises
        :class:`TrainingInterrupted`; a loss or parameter that is not finite raises ResultError
        before anything of it is saved. Another run training in ``out_dir`` is an OutputError."""
        with contextlib.ExitStack() as held:
            # Before anything is read: the other run may be writing it.
            distributed.check_on_main(
                lambda: held.enter_context(lock_run_folder(self.out_dir)), self.group, self.device
            )
            # From the start, so that a stop signal during set-up is a request like any other.
            held.enter_context(self.stop.on_signals(announce=self.group.is_main))
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        cfg, group = self.config, self.group
        start = self._restore() if resume else self._start_fresh()
        self._clock = time.perf_counter() - self._totals.get("run_time", 0.0)
        self._seconds_per_step = self._measure_step()
        self._plan_run(start)
        if group.is_main:
            print(self._cost_line(start), file=sys.stderr, flush=True)
        if group.is_main and self.logger_classes:
            self.loggers = open_loggers(self.logger_classes, self._logger_run(resumed=resume, start=start))
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
            with deterministic_kernels(cfg.deterministic, self.device):
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
            for logger in self.loggers:
                logger.close()
            del batches, loader  # stops the loader's worker processes
            distributed.teardown(group, wait=clean_exit)
        return result

    def _train(
        self, start: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], bar: tqdm[Any]
    ) -> None:
        """The loop: from step ``start`` to ``total_steps``, one optimizer step per iteration."""
        cfg, group, ctx = self.config, self.group, self.step_context
        self._loop_start = (start, time.perf_counter())
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
            # Main evaluates and writes; a failure there (weights no longer finite, a full disk)
            # stops every process at once instead of leaving them in the next collective. Every
            # process agrees on whether to evaluate: evaluated_step moves only on main, but the
            # steps this condition admits are the same everywhere.
            if step % cfg.eval_every == 0 and step > self.evaluated_step:
                distributed.check_on_main(self._evaluate_and_report, group, self.device)
            if step > start and step % cfg.checkpoint_every == 0:
                distributed.check_on_main(self._save_checkpoint, group, self.device)

            # ── forward / backward: the task's step. Synchronise, clip, step and zero grads
            #    happen in ctx.optimize, as each optimizer's accumulation window closes ──
            tick = time.perf_counter()
            # Randomness inside a step (dropout, a GAN's noise) depends on (seed, step, process)
            # only, so resuming cannot shift it.
            torch.manual_seed(step_seed(cfg.seed, step, group.rank))
            ctx.begin(step)
            losses: dict[str, torch.Tensor] = {}
            for micro_step in range(cfg.grad_accum):
                waiting = time.perf_counter()
                inputs, targets = next_batch(
                    batches, self.plan, self.train_pairs, step, group.rank, micro_step
                )
                inputs = inputs.to(self.device, non_blocking=True)
                targets = targets.to(self.device, non_blocking=True)
                self._window.wait += time.perf_counter() - waiting
                with ctx.micro_batch(micro_step), autocast(self.device, cfg.precision):
                    step_losses = self.task.training_step(ctx.models, (inputs, targets), ctx)
                for name, value in step_losses.items():
                    value = torch.as_tensor(value).detach().float() / cfg.grad_accum
                    losses[name] = losses[name] + value if name in losses else value
            ctx.end()
            self.step = step + 1

            # ── log ──
            window = self._window
            window.time += time.perf_counter() - tick
            window.steps += 1
            for name, value in losses.items():
                window.losses[name] = window.losses[name] + value if name in window.losses else value
            window.per_step.append((self.step, losses))
            # ── time budget: re-plan the remaining steps from the time they take here ──
            if cfg.max_time is not None:
                self._follow_time_budget(bar)
            if self.step % self.log_every == 0 or self.step == self.total_steps:
                self._log_training(bar)
            bar.update(1)
            self._call("on_step_end", self.step, losses)

            # ── stop: on Ctrl-C, SIGTERM or a callback's KeyboardInterrupt, in every process at once ──
            if distributed.any_process(self.stop.requested, group, self.device):
                self._stop_interrupted()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Metrics on the validation split, averaged over its images (train modes restored after).

        The picture-grid rows of the first ``grid_rows`` images are kept in ``last_grid``; how
        many images were measured (``eval_samples``) in ``evaluated_images``.
        """
        cfg = self.config
        count = self.eval_count
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

    # ── the plan: what the run will cost ─────────────────────────────────────────────────────
    def _measure_step(self) -> float:
        """Seconds an optimizer step takes here: two steps of copies of the task, its models and
        optimizers on the run's first batch (the first warms up), timed and thrown away, so the
        run itself is exactly what it would be unmeasured. Reading the batch counts as it will
        in the run: in full without loader workers, shared out among them otherwise."""
        cfg, device = self.config, self.device
        task, models, optimizers = copy.deepcopy((self.task, self.models, self.optimizers))
        scaler = torch.amp.GradScaler("cuda", enabled=self.scaler.is_enabled())
        # This process alone: nothing to synchronise.
        ctx = self._step_context(models, optimizers, scaler, distributed.Distributed())
        workers = auto_workers(self.group.world_size) if cfg.num_workers == "auto" else cfg.num_workers
        keys = self.plan.micro_batches(0, self.group.rank)
        reading = computing = 0.0
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), _out_of_memory_said(self):
            for _ in range(2):
                reading = computing = 0.0
                ctx.begin(0)
                for micro_step, micro_batch in enumerate(keys):
                    tick = time.perf_counter()
                    pairs = [self.train_pairs[key] for key in micro_batch]
                    inputs = torch.stack([pair[0] for pair in pairs]).to(device)
                    targets = torch.stack([pair[1] for pair in pairs]).to(device)
                    reading += time.perf_counter() - tick
                    tick = time.perf_counter()
                    with ctx.micro_batch(micro_step), autocast(device, cfg.precision):
                        task.training_step(ctx.models, (inputs, targets), ctx)
                    computing += time.perf_counter() - tick
                ctx.end()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
        return computing + reading if workers == 0 else max(computing, reading / workers)

    def _step_context(
        self,
        models: dict[str, torch.nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        group: distributed.Distributed,
    ) -> TrainingStep:
        """What the task's step optimizes through, with the run's accumulation and clipping."""
        cfg = self.config
        return TrainingStep(
            self.task.name,
            models,
            optimizers,
            scaler,
            grad_accum=cfg.grad_accum,
            grad_clip=cfg.grad_clip,
            group=group,
            device=self.device,
        )

    def _plan_run(self, start: int) -> None:
        """Settle what depends on the run's length: the steps a time budget allows (from the
        measured step), the evaluations' size and how often to log."""
        cfg = self.config
        if cfg.max_time is not None:
            self.total_steps = self._steps_within_budget(self._seconds_per_step, start)
        # Fixed for the run, so that every evaluation measures the same pictures.
        self.eval_count = evaluation.evaluation_size(
            cfg.eval_samples, available=len(self.val_pairs), trained_images=self.total_steps * cfg.batch_size
        )
        if cfg.log_every == "auto":
            self.log_every = min(_LOG_EVERY, max(1, self.total_steps // _MIN_LOG_POINTS))

    def _final_evaluation_seconds(self, seconds_per_step: float) -> float:
        """About what the evaluation after the last step costs: a forward pass is about a third
        of a training step, per picture."""
        if not len(self.val_pairs):
            return 0.0
        return self.eval_count * seconds_per_step / self.config.batch_size / 3

    def _steps_within_budget(self, seconds_per_step: float, done: int) -> int:
        """The step the run ends at: where the time left after ``done`` steps, less the final
        evaluation, runs out at ``seconds_per_step`` (at least one more step), capped by the
        step limit."""
        assert self.config.max_time is not None
        left = self.config.max_time - (time.perf_counter() - self._clock)
        left -= self._final_evaluation_seconds(seconds_per_step)
        steps = done + max(1, math.floor(left / max(seconds_per_step, 1e-9)))
        return steps if self.step_limit is None else min(steps, self.step_limit)

    def _follow_time_budget(self, bar: tqdm[Any]) -> None:
        """After a step: end the run here if the next step would end further past the budget
        than this one ends short of it (so the run ends at the step nearest the budget, final
        evaluation included), else plan its remaining steps at the pace of this run so far
        (evaluations and checkpoints included). Every process plans the same: the pace is
        averaged over them."""
        first_step, started = self._loop_start
        pace = (time.perf_counter() - started) / max(self.step - first_step, 1)
        pace = float(distributed.mean_over_processes(torch.tensor([pace], device=self.device), self.group)[0])
        assert self.config.max_time is not None
        spent = time.perf_counter() - self._clock + self._final_evaluation_seconds(pace)
        if distributed.any_process(spent + pace / 2 >= self.config.max_time, self.group, self.device):
            self.total_steps = self.step
        else:
            self.total_steps = max(self.step + 1, self._steps_within_budget(pace, self.step))
        bar.total = self.total_steps

    def _cost_line(self, start: int) -> str:
        """What the run will cost, said before its first step."""
        cfg = self.config
        steps = self.total_steps - start
        evaluations = len(range(start + cfg.eval_every, self.total_steps, cfg.eval_every)) + 1
        seconds = steps * self._seconds_per_step + evaluations * self._final_evaluation_seconds(
            self._seconds_per_step
        )
        length = f"{self.total_steps} steps" if not start else f"steps {start + 1}-{self.total_steps}"
        if cfg.max_time is not None:
            length = f"a budget of {_duration(cfg.max_time)}: about {length}"
        return (
            f"training {self.task.name} for {length} of {cfg.batch_size} pictures at "
            f"{self.task.config.image_size} px, {cfg.precision} on {self.device}: about "
            f"{_duration(seconds)} here ({self._seconds_per_step:.2f} s a step, measured); "
            f"results in {self.out_dir}"
        )

    def _check_validation_size(self, total: int, count: int) -> None:
        if 0 < count < MIN_VALIDATION_PICTURES:
            fraction = self.config.val_fraction
            warnings.warn(
                f"the validation split holds {count} picture(s) ({fraction:g} of {total}), too few for "
                "its metrics to mean much: give more pictures (at val_fraction "
                f"{fraction:g}, {math.ceil(MIN_VALIDATION_PICTURES / fraction)} give "
                f"{MIN_VALIDATION_PICTURES}) or raise val_fraction (--set val_fraction=...)",
                stacklevel=4,
            )

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
        grid = save_grid(self.out_dir / "samples" / f"step-{self.step:06d}.png", self.last_grid)
        save_loss_curve(self.out_dir / "loss.png", self.history)
        for logger in self.loggers:
            logger.log_scalars(self.step, {f"val/{name}": value for name, value in metrics.items()})
            logger.log_image(self.step, "samples", grid)
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
        window, self._window = self._window, _LogWindow()
        names = sorted(window.losses)
        losses: dict[str, float] = {}
        if names:
            stacked = torch.stack([window.losses[name] for name in names]) / window.steps
            losses = dict(
                zip(names, distributed.mean_over_processes(stacked, self.group).tolist(), strict=True)
            )
        if not all(map(math.isfinite, losses.values())):
            # The averages are the same in every process, so every process stops here.
            first = self.step - window.steps + 1
            raise self._diverged(window, f"the mean losses of steps {first}-{self.step} are {losses}")
        images = window.steps * self.config.batch_size
        for key, value in (("time", window.time), ("wait", window.wait), ("images", images)):
            self._totals[key] += value
        speed = images / max(window.time, 1e-9)
        wait = window.wait / max(window.time, 1e-9)
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
        if self.loggers:
            scalars = {
                **{f"loss/{name}": value for name, value in losses.items()},
                **{f"lr/{name}": value for name, value in lrs.items()},
                "images_per_s": speed,
                "data_wait": wait,
            }
            for logger in self.loggers:
                logger.log_scalars(self.step, scalars)

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
            for logger in self.loggers:
                for path in (result.weights, result.registry_entry):
                    if path is not None:
                        logger.log_artifact(path)
        result.metrics, result.best = dict(self.metrics), self.best
        totals = self._totals
        result.elapsed_s = totals["time"]
        result.images_per_s = totals["images"] / max(totals["time"], 1e-9)
        result.data_wait_fraction = totals["wait"] / max(totals["time"], 1e-9)
        self._call("on_train_end", result)
        return result

    def _stop_interrupted(self, error: KeyboardInterrupt | None = None) -> NoReturn:
        """Write a checkpoint of the last complete step and raise TrainingInterrupted."""
        if self.step_context.half_updated or (error is not None and self.group.enabled):
            # Stopped halfway through a step (or in one process only): this state cannot be resumed.
            found = list_checkpoints(self.out_dir)
            last = found[-1][1] if found else None
            where = f"resume from the last checkpoint, {last}" if last else "no checkpoint was written yet"
            raise TrainingInterrupted(
                f"training stopped in the middle of step {self.step + 1}: {where}",
                step=found[-1][0] if found else 0,
                checkpoint=last,
                out_dir=self.out_dir,
                signal_number=self.stop.signal,
            ) from error
        # Only the main process writes; the others name the folder it writes.
        path = self._save_checkpoint() if self.group.is_main else checkpoint_dir(self.out_dir, self.step)
        cause = f" by {self.stop.signal.name}" if self.stop.signal else ""
        raise TrainingInterrupted(
            f"training interrupted{cause} at step {self.step}; checkpoint saved to {path}",
            step=self.step,
            checkpoint=path,
            out_dir=self.out_dir,
            signal_number=self.stop.signal,
        ) from error

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(self, *args)
            except KeyboardInterrupt:
                self.stop.ask()

    # ── checkpoints ──────────────────────────────────────────────────────────────────────────
    def _save_checkpoint(self, *, best: bool = False) -> Path:
        """Write the full state after ``self.step`` steps (main process only)."""
        problem = first_non_finite(self.models, self.optimizers)
        if problem is not None:
            raise self._diverged(self._window, f"{problem} is not finite after step {self.step}")
        tensors, optimizer_states = capture_tensors(self.models, self.optimizers, self.device)
        state = self._run_state(optimizer_states).to_dict()
        if best:
            folder = write_best_checkpoint(self.out_dir, self.step, tensors, state)
        else:
            folder = write_checkpoint(checkpoint_dir(self.out_dir, self.step), tensors, state)
            prune_checkpoints(self.out_dir, self.config.keep_last, newest=self.step)
        self._call("on_checkpoint", self.step, folder)
        return folder

    def _run_state(self, optimizer_states: dict[str, Any]) -> RunState:
        self._totals["run_time"] = time.perf_counter() - self._clock  # what a time budget counts
        epoch, position = self.plan.position(self.step)
        return RunState(
            task=self.task.name,
            task_config=self.task.config.model_dump(mode="json"),
            train_config=self.config.model_dump(mode="json"),
            step=self.step,
            epoch=epoch,
            batch_in_epoch=position,
            steps_per_epoch=self.plan.steps_per_epoch,
            world_size=self.group.world_size,
            optimizers=optimizer_states,
            scaler=self.scaler.state_dict(),
            schedule={
                "name": self.config.lr_schedule,
                "decay_start": self.config.decay_start,
                "total_steps": self.total_steps,
                "base_lrs": self.base_lrs,
            },
            rng=host_rng_state(),
            task_state=self.task.state_dict(),
            best=self.best,
            started_from=self.started_from,
            evaluated_step=self.evaluated_step,
            metrics=self.metrics,
            data=self._data_info(),
            totals=self._totals,
        )

    def _diverged(self, window: _LogWindow, fallback: str) -> ResultError:
        """The error that stops a run whose losses or weights are no longer finite: it names the
        first step of ``window`` with a non-finite loss in this process, else ``fallback``."""
        where = fallback
        for step, losses in window.per_step:
            bad = {name: float(value) for name, value in losses.items() if not math.isfinite(value)}
            if bad:
                name, value = next(iter(bad.items()))
                where = f"loss {name!r} is {value} at step {step}"
                break
        found = list_checkpoints(self.out_dir)
        kept = f"the last checkpoint, {found[-1][1]}, is kept" if found else "no checkpoint was written"
        return ResultError(
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
            raise OutputExistsError(
                f"{self.out_dir} already holds a training run (checkpoint {found[-1][1].name}): "
                "resume it with --resume (resume=True), or choose another --out",
                path=self.out_dir,
            )

    def _restore(self) -> int:
        """Load the newest checkpoint into the models, optimizers and run state; return its step."""
        folder, tensors, state = resume_point(self.out_dir, self.task.name, warn=self.group.is_main)
        restore_tensors(folder, tensors, state, self.models, self.optimizers, self.device)
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.task.load_state_dict(state.task_state)
        self.step = state.step
        self.best, self.metrics = state.best, dict(state.metrics)
        self.started_from = state.started_from
        self.evaluated_step = state.evaluated_step
        self._totals = dict(state.totals)
        events = self.log.keep_until(self.step)
        self.history = [(event["step"], event["losses"]) for event in events if event.get("event") == "train"]
        changed = state.changes(
            self.config.model_dump(mode="json"),
            world_size=self.group.world_size,
            train_size=len(self.train_pairs),
        )
        if changed and self.group.is_main:
            warnings.warn(
                f"resuming with a different {', '.join(changed)}: "
                "the run will not match an uninterrupted one",
                stacklevel=3,
            )
        return self.step

    # ── the results ──────────────────────────────────────────────────────────────────────────
    def _export(self) -> Exported:
        """Write ``TASK.safetensors`` (self-describing) and its registry entry beside it."""
        described = recipe(
            self.config,
            steps=self.step,
            data_spec=self.data_spec,
            processes=self.group.world_size,
            optimizers=self.optimizers,
            base_lrs=self.base_lrs,
            started_from=self.started_from,
        )
        return write_weights(
            self.out_dir,
            self.task,
            self.models,
            self.config,
            recipe=described,
            metrics=self.metrics,
            dataset=self._data_info(),
        )

    def _logger_run(self, *, resumed: bool, start: int) -> LoggerRun:
        described = recipe(
            self.config,
            steps=self.total_steps,
            data_spec=self.data_spec,
            processes=self.group.world_size,
            optimizers=self.optimizers,
            base_lrs=self.base_lrs,
            started_from=self.started_from,
        )
        params = {
            **flatten_dotted(self.task.config.model_dump(mode="json"), "task."),
            **flatten_dotted(described),
        }
        return LoggerRun(
            task=self.task.name,
            out_dir=self.out_dir,
            params=params,
            resumed_step=start if resumed else None,
        )

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
        if plan.shards is not None and len(np.unique(plan.shards)) < self.group.world_size:
            raise DataError(
                f"the training split is in {len(np.unique(plan.shards))} shard(s), fewer than the "
                f"{self.group.world_size} processes, each of which reads shards of its own: cut the data "
                "into more shards (imgzoo data pack --shard-size)"
            )
        if plan.steps_per_epoch == 0:
            raise DataError(
                f"the training split has {plan.dataset_size} image(s), fewer than one batch of "
                f"{cfg.batch_size}: add images, or lower train.batch_size or train.val_fraction"
            )

    def _check_pairs(self) -> None:
        """Run the first training item through the task now, so a broken pipeline fails early."""
        pair = self.train_pairs[self.plan.micro_batches(0, self.group.rank)[0][0]]  # this process's
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(t, torch.Tensor) and t.ndim == 3 for t in pair)
        ):
            raise TaskBugError(
                self.task.name, "made a pair that is not two CxHxW tensors (input, target) in make_pair()"
            )


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``1 h 31 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@contextlib.contextmanager
def _out_of_memory_said(trainer: Trainer) -> Iterator[None]:
    """Running out of memory in the step measured before the run starts is a one-line error
    naming what to lower, not an allocator's traceback."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        cfg, size = trainer.config, getattr(trainer.task.config, "image_size", "?")
        raise MemoryBudgetError(
            f"training {trainer.task.name!r} ran out of memory in its first step, measured before the "
            f"run starts (batch_size {cfg.batch_size}, image_size {size}, precision {cfg.precision}): "
            "lower image_size or batch_size (--set image_size=..., --set batch_size=...), or use grad_accum"
        ) from error
