"""Training and evaluation for every task: one :class:`Trainer`, knowing nothing of any task.

    >>> from imgzoo.training import train
    >>> result = train("colorize", "minifigs:n=500", out="runs/colorize", steps=3000, batch_size=10)
    >>> result.weights                      # runs/colorize/colorize.safetensors
    >>> imgzoo.load("colorize", weights=result.weights)

The contract between a trainer and a task
-----------------------------------------
``Trainer(task, models, train_data, val_data, config, out_dir, callbacks=())`` then ``.fit()``:

* **data**: ``train_data``/``val_data`` yield :class:`~imgzoo.data.Sample`; training samples go
  through ``PairTransform(task.config.image_size, scale=task.scale, **task.augmentations())``,
  validation ones through its centre crop at the same crop policy and scale (``pair_transforms``),
  then ``task.make_pair(sample) -> (input, target)``; a task reads a sample's named inputs
  (``sample.inputs``) there.
* **a step**: ``task.training_step(models, (inputs, targets), ctx)`` runs under autocast and
  calls ``ctx.optimize(name, loss)`` once per optimizer of ``task.configure_optimizers``. That
  backpropagates ``loss`` into that optimizer's parameters, divided by ``grad_accum``; when the
  accumulation window closes it clips, steps and zeroes them; in a distributed run the task's
  ``models`` are wrapped in ``DistributedDataParallel``, which averages that last backward's
  gradients over processes while it runs. The learning-rate schedule multiplies every
  optimizer's base rate.
* **evaluation**: ``task.predict_for_metrics`` on validation inputs, ``task.metrics`` averaged
  over images, ``task.primary_metric`` choosing the best checkpoint, ``task.to_display`` for the
  pictures.
* **batches**: ``batch_size`` is the *global* batch of one optimizer step; it is split into
  ``grad_accum`` micro-batches and each of those over the processes, so any split trains alike.
* **out_dir**: ``metrics.jsonl``, ``loss.png``, ``samples/step-NNNNNN.png``,
  ``checkpoints/step-NNNNNNNN/`` (last ``keep_last``) and ``checkpoints/best`` (a link to the
  best one's folder, so it never goes missing), and at the end
  ``TASK.safetensors`` (models as ``{model}.{parameter}``, metadata ``task``, ``config``,
  ``recipe``, ``metrics``, ``dataset``, ``code_version``) with ``registry-entry.toml``.
* **resume**: ``fit(resume=True)`` continues bitwise-exactly (CPU, fp32): the batches of a step
  and the randomness inside it are pure functions of (seed, step), and checkpoints keep the
  task's own ``state_dict()`` besides the models and optimizers. Checkpoints are verified
  against the digests they record; a damaged newest one is skipped with a warning.
* **interrupts**: Ctrl-C or SIGTERM finishes the step, writes a checkpoint and raises
  :class:`TrainingInterrupted`; only the main process of a distributed run writes files.
* **one run per folder**: ``fit`` holds a lock on ``out_dir/train.lock``; another run there
  is an OutputError.
* **divergence**: a non-finite loss (checked at each log) or weight (checked before every
  checkpoint and the export) is a ResultError naming the step; nothing non-finite is saved.

The files, one service each
---------------------------
Read ``loop.py`` first: :class:`Trainer` and its loop, ``Trainer._train``, one step per
iteration in comment-headed phases (learning rate, evaluate/checkpoint, forward/backward, log,
stop). Each thing it delegates has its own file:

==================  ==========================================================================
``api.py``          ``train()`` / ``evaluate()``: a task name and a data spec in, a Trainer run
``config.py``       :class:`TrainConfig`, and which settings are the recipe, the place, the output
``loop.py``         :class:`Trainer`: the loop, evaluation, logging, the calls to the rest
``step.py``         the step context of ``training_step``: backward, synchronise, clip, step
``distributed.py``  processes: joining the group, DistributedDataParallel, checks on the main one
``batches.py``      which images make each step's batch (a pure function of seed and step)
``state.py``        :class:`~imgzoo.training.state.RunState`: what a checkpoint keeps, typed
``checkpoint.py``   checkpoint folders: written atomically, verified, rotated, the best kept
``export.py``       the final ``TASK.safetensors``, its recipe and its registry entry
``environment.py``  the output folder, stop signals, deterministic kernels, the code version
``results.py``      :class:`Callback`, :class:`TrainResult`, :class:`TrainingInterrupted`
``evaluation.py``   metrics over a validation split or through the whole pipeline
``report.py``       ``metrics.jsonl``, the picture grids, the loss curve, the registry entry text
``schedule.py``     the learning-rate schedule, a pure function of the step
``lock.py``         one run per output folder
``cli.py``          ``imgzoo train`` and ``imgzoo eval``
==================  ==========================================================================
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgzoo.training.api import evaluate, train
    from imgzoo.training.config import TrainConfig
    from imgzoo.training.loop import Trainer
    from imgzoo.training.results import Callback, TrainingInterrupted, TrainResult

__all__ = ["Callback", "TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "evaluate", "train"]

# Resolved on first access, so that `imgzoo --help` and `imgzoo.training.cli` load without torch.
_LAZY = {
    "train": "imgzoo.training.api",
    "evaluate": "imgzoo.training.api",
    "TrainConfig": "imgzoo.training.config",
    "Callback": "imgzoo.training.results",
    "Trainer": "imgzoo.training.loop",
    "TrainingInterrupted": "imgzoo.training.results",
    "TrainResult": "imgzoo.training.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imgzoo.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
