"""Learning-rate schedules: a pure function of the step, so resuming needs no scheduler object."""

from __future__ import annotations

__all__ = ["lr_factor"]


def lr_factor(step: int, total_steps: int, *, schedule: str = "constant", decay_start: float = 0.5) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    ``"constant"``: always 1. ``"linear"`` (pix2pix): 1 until ``decay_start * total_steps``, then
    falling linearly so that it would reach 0 at ``total_steps``; the last step still learns
    (its factor is ``1 / decay_steps``).
    """
    if schedule == "constant":
        return 1.0
    if schedule != "linear":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}: use 'constant' or 'linear'")
    if step >= total_steps:
        return 0.0
    start = int(decay_start * total_steps)
    if step < start:
        return 1.0
    return (total_steps - step) / (total_steps - start)
