"""The run state: everything a checkpoint keeps besides tensors, typed.

A checkpoint's ``state.json`` is :meth:`RunState.to_dict`, with the ``version`` of its fields;
:meth:`RunState.from_dict` reads that version only. A change of fields raises
:data:`RunState.VERSION`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from imgzoo.errors import CheckpointError

__all__ = ["EXACTNESS_SETTINGS", "RunState"]

# Settings whose change makes a resumed run differ from an uninterrupted one.
EXACTNESS_SETTINGS = ("batch_size", "grad_accum", "seed", "precision", "lr_schedule", "decay_start")


def _new_totals() -> dict[str, float]:
    return {"time": 0.0, "wait": 0.0, "images": 0}


@dataclass
class RunState:
    """Where a run stands after ``step`` optimizer steps, as JSON data (tensors are kept apart,
    named by the ``{"__tensor__": name}`` placeholders in ``optimizers``)."""

    VERSION: ClassVar[int] = 2

    task: str
    task_config: dict[str, Any]
    train_config: dict[str, Any]
    """The :class:`~imgzoo.training.TrainConfig` the run was trained with, every field."""
    step: int
    epoch: int
    batch_in_epoch: int
    steps_per_epoch: int
    world_size: int
    optimizers: dict[str, Any]
    """Each optimizer's ``state_dict()``, its tensors replaced by placeholders."""
    rng: dict[str, Any]
    """The global numpy and Python generators (torch's are tensors)."""
    schedule: dict[str, Any]
    scaler: dict[str, Any] = field(default_factory=dict)
    task_state: dict[str, Any] = field(default_factory=dict)
    """The task's own ``state_dict()``."""
    best: dict[str, Any] | None = None
    started_from: dict[str, str] | None = None
    evaluated_step: int = 0
    """The step of the last evaluation, so that a resumed run neither skips nor repeats one."""
    metrics: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=_new_totals)
    """Training time, time waiting for batches and images seen, over the whole run."""

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON data, with its ``version``."""
        return {"version": self.VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: Path | str) -> RunState:
        """Read what :meth:`to_dict` wrote; CheckpointError naming ``source`` if another version
        of the state wrote it, or a field is missing."""
        version = data.get("version")
        if version != cls.VERSION:
            raise CheckpointError(
                f"checkpoint {source} holds a run state of version {version!r}, and this imgzoo reads "
                f"version {cls.VERSION}: resume it with the imgzoo that wrote it, or start a new run",
                path=source,
            )
        fields = dataclasses.fields(cls)
        values = {item.name: data[item.name] for item in fields if item.name in data}
        # Only the fields whose default is None may be null.
        missing = sorted(
            item.name for item in fields if values.get(item.name) is None and item.default is not None
        )
        if missing:
            raise CheckpointError(
                f"checkpoint {source} is unreadable: its run state lacks {', '.join(missing)}; "
                "resume from another one",
                path=source,
            )
        return cls(**values)

    def changes(self, train_config: Mapping[str, Any], *, world_size: int, train_size: int) -> list[str]:
        """What differs, in a resume with these settings, in a way that makes it differ from an
        uninterrupted run (empty when it will match)."""
        changed = [
            key
            for key in EXACTNESS_SETTINGS
            if key in self.train_config and self.train_config[key] != train_config[key]
        ]
        if self.world_size != world_size and world_size > 1:
            changed.append("the number of processes")
        if self.data.get("train_size") != train_size:
            changed.append("the size of the training split")
        return changed
