"""`TrainConfig`: how to train (steps, batch, precision, schedule, logging, loggers), whatever the task.

Training settings and the task's own settings share one namespace, so a caller names either kind
the same way: ``train("colorize", data, out, steps=200, image_size=64)``, ``--set steps=200`` on
the command line, ``steps = 200`` at the top level of the config file. :func:`split_settings`
sorts them: a :class:`TrainConfig` field is a training setting, a field of the task's config (a
dotted name reaches a nested one) a task setting, anything else an error. No name can be both: a
task whose config has a field named as a training setting, or as one of ``train``'s own arguments
(:data:`TRAIN_ARGUMENTS`), cannot be trained, and the error says so.

A TrainConfig is built from layers, later ones winning::

    defaults  <  the checkpoint being resumed  <  the config file  <  the call's settings (--set)

``steps`` and ``epochs`` exclude each other: a layer that sets one clears the other. ``max_time``
is a budget of wall-clock time: alone (a layer that sets it without ``steps`` or ``epochs`` clears
them), the budget ends the run; beside ``steps`` or ``epochs``, whichever comes first.

Every field is one of three kinds, declared once in :data:`SETTING_KINDS`: a **recipe** setting
says what was trained (it goes into the weights' recipe, and a resume keeps it), a **place**
setting says where and how visibly this process runs (never recorded; a resume takes it from
the call, not from the checkpoint), an **output** setting says what file to write (a resume
keeps it, but the recipe leaves it out: it changes no weight).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imgzoo.config import expand_dotted
from imgzoo.errors import ConfigError, PluginError
from imgzoo.hardware import PrecisionChoice

__all__ = [
    "OUTPUT_SETTINGS",
    "PLACE_SETTINGS",
    "RECIPE_SETTINGS",
    "SETTING_KINDS",
    "TRAIN_ARGUMENTS",
    "TrainConfig",
    "build_train_config",
    "parse_duration",
    "split_settings",
]

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: object) -> float:
    """Seconds of a duration given as a number of seconds or as ``"90s"``, ``"20m"``, ``"2h"``
    (``"1.5h"`` too); ValueError saying what it accepts otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        number, unit = (text[:-1], text[-1]) if text[-1:] in _DURATION_UNITS else (text, "s")
        try:
            return float(number) * _DURATION_UNITS[unit]
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a duration: give seconds (600) or a number and a unit: 90s, 20m, 2h")


class TrainConfig(BaseModel):
    """How to train: every field is set by its name, as a task setting is (``steps=200``,
    ``--set steps=200``, ``steps = 200`` in the config file)."""

    # allow_inf_nan: an infinite grad_clip or fraction is a typo, not a setting.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    steps: int | None = Field(
        1000, ge=1, description="Optimizer steps to train for (total, counting steps before a resume)."
    )
    epochs: int | None = Field(
        None, ge=1, description="Train for this many passes over the training split instead of `steps`."
    )
    max_time: float | None = Field(
        None,
        gt=0,
        description="A wall-clock budget (seconds, or 90s, 20m, 2h; counting every resumed part): the "
        "run stops at the step that ends nearest it, final evaluation included, and writes a checkpoint "
        "and the weights; the learning-rate schedule is fitted to the steps the budget allows, measured as "
        "it goes. Alone it ends the run; beside steps or epochs, whichever comes first.",
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="Global batch: images per optimizer step, summed over the grad_accum micro-batches "
        "and over all processes of a distributed run (so results do not depend on the process count).",
    )
    grad_accum: int = Field(
        1, ge=1, description="Split each batch into this many micro-batches whose gradients are accumulated."
    )
    grad_clip: float | None = Field(
        None, gt=0, description="Clip each optimizer's gradient norm to this value; None turns clipping off."
    )
    lr_schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="'constant', or 'linear': constant, then decaying linearly to 0 from `decay_start` "
        "(pix2pix's schedule). It multiplies every optimizer's base learning rate.",
    )
    decay_start: float = Field(
        0.5, ge=0, le=1, description="Fraction of the run after which the 'linear' schedule starts decaying."
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,  # numpy's global generator takes no larger seed
        description="Seeds the split, the data order, the augmentations and the model initialisation "
        "(0 to 2**32 - 1).",
    )
    deterministic: bool = Field(
        False,
        description="Use only deterministic kernels (torch.use_deterministic_algorithms); slower on GPU.",
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    precision: PrecisionChoice = Field(
        "auto",
        description="auto: mixed precision bf16 where the device computes it natively (a CPU with "
        "AVX512-BF16 or AMX, a CUDA GPU of compute capability 8.0+: two to three times the images/s "
        "here), fp32 elsewhere; or fp32, bf16, fp16 (fp16 scales the loss on CUDA). A run records the "
        "precision auto chose, and a resumed run keeps it.",
    )
    eval_every: int = Field(500, ge=1, description="Evaluate on the validation split every this many steps.")
    eval_samples: Literal["auto"] | Annotated[int, Field(ge=1)] | None = Field(
        "auto",
        description="Validation images each evaluation measures: at most this many; None: all of them; "
        "'auto': as many as the run trains on (steps x batch_size), at least 64, so that a short run "
        "stays short and a long one is measured on its whole validation split.",
    )
    checkpoint_every: int = Field(
        1000, ge=1, description="Write a resumable checkpoint every this many steps."
    )
    keep_last: int = Field(3, ge=1, description="Keep this many recent checkpoints (plus the best one).")
    val_fraction: float = Field(
        0.1, ge=0, lt=1, description="Fraction of the data held out for validation (0: no evaluation)."
    )
    num_workers: Literal["auto"] | int = Field(
        "auto",
        description="Data-loading worker processes; 'auto' picks from the CPU count, 0 loads in-process.",
    )
    cache_images: bool = Field(
        False, description="Keep decoded images in memory after their first use (for small datasets)."
    )
    log_every: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto",
        description="Log losses to metrics.jsonl and the progress bar every N steps; 'auto': every 50, "
        "or more often in a short run, so that it logs at least 20 points (a curve in loss.png).",
    )
    grid_rows: int = Field(
        4, ge=1, description="Validation images in each picture grid (input | output | target)."
    )
    export: Literal["all", "inference"] = Field(
        "all", description="Models in the final weights file: all of them, or only the inference model."
    )
    export_dtype: Literal["fp32", "fp16"] = Field(
        "fp32", description="Storage type of the final weights file (fp16 halves it; it loads as fp32)."
    )
    progress: bool = Field(True, description="Show a progress bar when the output is a terminal.")
    loggers: list[str] = Field(
        default_factory=list,
        description="Where metrics go besides metrics.jsonl: 'tensorboard' (OUT/tensorboard/), 'mlflow' "
        "(MLFLOW_TRACKING_URI, else OUT/mlflow.db) or a logger a plugin adds; --logger NAME (repeatable). "
        "A resumed run keeps them and continues their runs.",
    )

    @field_validator("max_time", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("set one of steps and epochs, not both")
        if self.steps is None and self.epochs is None and self.max_time is None:
            raise ValueError("set one of steps, epochs and max_time")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})"
            )
        if isinstance(self.num_workers, int) and self.num_workers < 0:
            raise ValueError(f"num_workers must be 'auto' or at least 0, not {self.num_workers}")
        return self


SettingKind = Literal["recipe", "place", "output"]

SETTING_KINDS: dict[str, SettingKind] = {
    "steps": "recipe",
    "epochs": "recipe",
    "max_time": "recipe",
    "batch_size": "recipe",
    "grad_accum": "recipe",
    "grad_clip": "recipe",
    "lr_schedule": "recipe",
    "decay_start": "recipe",
    "seed": "recipe",
    "deterministic": "recipe",
    "precision": "recipe",
    "eval_every": "recipe",
    "eval_samples": "recipe",
    "checkpoint_every": "recipe",
    "keep_last": "recipe",
    "val_fraction": "recipe",
    "cache_images": "recipe",
    "log_every": "recipe",
    "grid_rows": "recipe",
    "device": "place",
    "num_workers": "place",
    "progress": "place",
    "export": "output",
    "export_dtype": "output",
    "loggers": "output",
}
"""The kind of every :class:`TrainConfig` field (see the module docstring)."""


def _settings_of(kind: SettingKind) -> frozenset[str]:
    return frozenset(name for name, declared in SETTING_KINDS.items() if declared == kind)


RECIPE_SETTINGS = _settings_of("recipe")
PLACE_SETTINGS = _settings_of("place")
OUTPUT_SETTINGS = _settings_of("output")


TRAIN_ARGUMENTS = frozenset({"task", "data", "out", "config_file", "resume", "weights", "callbacks"})
"""The names of :func:`imgzoo.train`'s own arguments, which no setting may take."""


def split_settings(
    task: str, task_config: type[BaseModel], settings: Mapping[str, Any], *, source: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``settings`` (task and training settings side by side, by name) as the task's (nested:
    ``{"a.b": 1}`` becomes ``{"a": {"b": 1}}``) and the trainer's.

    A task config field named as a training setting raises :class:`PluginError`; names of
    neither kind raise one :class:`ConfigError` that lists them all, and says where the valid
    ones are listed.
    """
    clashes = sorted(set(task_config.model_fields) & (set(TrainConfig.model_fields) | TRAIN_ARGUMENTS))
    if clashes:
        raise PluginError(
            f"task {task!r} cannot be trained: its config has fields named as training settings or "
            f"arguments of imgzoo.train ({', '.join(clashes)}), and a setting would not say which it "
            "means; the task's plugin must rename them"
        )
    task_settings: dict[str, Any] = {}
    train_settings: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in settings.items():
        if name in TrainConfig.model_fields:
            train_settings[name] = value
        elif name.split(".", 1)[0] in task_config.model_fields:
            task_settings[name] = value
        else:
            unknown.append(name)
    if unknown:
        known = [*task_config.model_fields, *TrainConfig.model_fields]
        where = (
            f"neither a setting of task {task!r} (`imgzoo info {task}` lists them) nor a training "
            "setting (`imgzoo train --help` lists them)"
        )
        problems = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
            hint = f": did you mean {' or '.join(map(repr, close))}?" if close else ""
            problems.append((name, f"{where}{hint}"))
        raise ConfigError(task, problems, source=source)
    return expand_dotted(task_settings), train_settings


def build_train_config(task: str, layers: Iterable[tuple[str, Mapping[str, Any] | None]]) -> TrainConfig:
    """Merge ``(source name, settings)`` layers in order and validate once.

    Failures raise :class:`ConfigError` naming each field.
    """
    merged: dict[str, Any] = {}
    sources = []
    for source, layer in layers:
        if not layer:
            continue
        sources.append(source)
        settings = dict(layer)
        # A later layer's choice of run length replaces an earlier one's, whichever unit it used;
        # a time budget given alone is the whole choice.
        if settings.get("epochs") is not None:
            merged["steps"] = None
        if settings.get("steps") is not None:
            merged["epochs"] = None
        if settings.get("max_time") is not None and settings.get("steps") is settings.get("epochs") is None:
            merged["steps"] = merged["epochs"] = None
        merged.update(settings)
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as error:
        problem = ConfigError.from_validation_error(task, error)
        fields = [
            (name if name != "(config)" else "training settings", message) for name, message in problem.errors
        ]
        raise ConfigError(task, fields, source=", ".join(sources)) from None
