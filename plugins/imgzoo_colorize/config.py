"""The settings of the ``colorize`` task: pydantic only, so that ``imgzoo info colorize`` reads
them without importing torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imgzoo import TaskConfig

__all__ = ["ColorizeConfig"]


class ColorizeConfig(TaskConfig):
    """Settings of the ``colorize`` task (``--set key=value``, or keyword arguments of ``imgzoo.run``)."""

    image_size: int = Field(
        256,
        ge=8,
        le=8192,
        multiple_of=8,
        description=(
            "Working resolution, a multiple of 8: the network sees the image resized so that its long side "
            "is this (aspect kept, sides rounded to multiples of 8); training crops are this size squared. "
            "The result always has the input's own size."
        ),
    )
    learning_rate: float = Field(
        1e-3, gt=0, le=1, description="RMSprop learning rate (the paper's Keras default, 1e-3)."
    )
    loss: Literal["mse", "rebalanced"] = Field(
        "mse",
        description=(
            "'mse': the paper's mean squared error on ab, which averages plausible colours into washed-out "
            "browns. 'rebalanced': the same error weighted per pixel by the rarity of the target colour "
            "(Zhang et al. 2016), which keeps saturated colours."
        ),
    )
    rebalance_mix: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "loss='rebalanced' only: weight of the uniform distribution mixed into the empirical colour "
            "prior (Zhang et al.'s lambda). 1 gives plain MSE; smaller values weigh rare colours more."
        ),
    )
    chroma_upsampling: Literal["guided", "bilinear"] = Field(
        "guided",
        description=(
            "How the predicted chroma reaches the image's full resolution. 'guided': local linear models "
            "of chroma against lightness (He et al.'s guided filter), evaluated with the image's own L, so "
            "colour stops at edges. 'bilinear': the chroma resized alone, which bleeds across edges."
        ),
    )
    guide_radius: int = Field(
        2,
        ge=0,
        le=64,
        description="chroma_upsampling='guided' only: the filter's window radius, in working-size pixels.",
    )
    guide_eps: float = Field(
        1e-4,
        gt=0,
        le=1,
        description=(
            "chroma_upsampling='guided' only: the guided filter's regulariser, in (L / 100)^2: lightness "
            "variations smaller than its square root are smoothed over rather than followed."
        ),
    )
    chroma_confidence: bool = Field(
        True,
        description=(
            "Inference only: predict on the image and on its mirror image, average the two, and scale the "
            "chroma by how well they agree (1 / (1 + d^2 / confidence_tolerance^2), d their ab distance, "
            "averaged over the picture). On pictures unlike the training data the two disagree and the "
            "result fades towards the gray input instead of painting blotches; costs a second forward pass "
            "at the working size."
        ),
    )
    confidence_tolerance: float = Field(
        10.0,
        gt=0,
        le=256,
        description="chroma_confidence only: the ab distance (Lab units) at which the agreement is 1/2.",
    )
    rebalance_sigma: float = Field(
        5.0,
        ge=0,
        description="loss='rebalanced' only: width (ab units) of the Gaussian that smooths the colour prior.",
    )
