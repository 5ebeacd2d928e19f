"""The settings of ``edges2photo``: pydantic only, so that ``imgzoo info edges2photo`` reads
them without importing torch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from imgzoo import TaskConfig

__all__ = ["MAX_LEVELS", "Edges2PhotoConfig"]

MAX_LEVELS = 8  # pix2pix's depth: a 1x1 bottleneck at 256x256


def _levels_for(image_size: int) -> int:
    """How many times ``image_size`` halves evenly, within [2, MAX_LEVELS]: the default depth."""
    halvings = (image_size & -image_size).bit_length() - 1
    return max(2, min(MAX_LEVELS, halvings))


class Edges2PhotoConfig(TaskConfig):
    """Settings of ``edges2photo``; the architecture fields must match the weights."""

    image_size: int = Field(
        256,
        ge=8,
        le=8192,
        description="Training crop size, a multiple of 2**num_downs. Unless num_downs is set, it also "
        "chooses the depth: 256 gives pix2pix's 8 levels, 128 gives 7, 64 gives 6.",
    )
    learning_rate: float = Field(
        2e-4, gt=0, le=1, description="Adam learning rate of both models (pix2pix: 2e-4)."
    )

    # architecture
    ngf: int = Field(32, ge=1, le=256, description="Generator filters in the outermost level (pix2pix: 64).")
    ndf: int = Field(
        32,
        ge=1,
        le=256,
        description="Discriminator filters in its first layer (pix2pix: 64; 32 trains twice as fast).",
    )
    num_downs: int | None = Field(
        None,
        ge=2,
        le=12,
        description="U-Net levels; inputs are padded to multiples of 2**num_downs. Unset: as many as "
        f"image_size is divisible by 2, at most {MAX_LEVELS}.",
    )
    norm: Literal["batch", "instance", "none"] = Field(
        "batch", description="Normalisation in both models: 'batch' (pix2pix), 'instance' or 'none'."
    )
    dropout: float = Field(
        0.5, ge=0, lt=1, description="Dropout probability in the generator's 3 innermost decoder levels."
    )
    upsample: Literal["resize", "transposed"] = Field(
        "resize",
        description="How the generator's decoder doubles the size: 'resize' (nearest x2, then a 3x3 "
        "convolution; no checkerboard) or 'transposed' (pix2pix's 4x4 stride-2 transposed convolution, "
        "for parameter parity with it).",
    )
    disc_layers: int = Field(
        3, ge=1, le=6, description="Stride-2 layers of the PatchGAN: 3 judges 70x70 patches, 1 judges 16x16."
    )

    # training
    gan_loss: Literal["bce", "lsgan"] = Field(
        "bce", description="Adversarial loss: 'bce' (pix2pix's, on logits) or 'lsgan' (least squares)."
    )
    gan_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the adversarial loss; 0 trains the L1-only U-Net baseline (no discriminator).",
    )
    l1_weight: float = Field(100.0, ge=0, description="Weight of the L1 loss to the photo (pix2pix: 100).")
    feature_matching_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of pix2pixHD's feature-matching loss: L1 between the discriminator's "
        "activations on the real pair and on the generated one. It rewards the texture the "
        "discriminator looks at, which L1 to the photo averages away (pix2pixHD: 10; 0 turns it off).",
    )

    # edges
    extract_edges: bool = Field(
        False,
        description="At inference, draw the edges of a photo first, instead of reading it as an edge map.",
    )
    edge_sigma: float = Field(
        0.33,
        ge=0,
        lt=1,
        description="Canny thresholds are (1 - edge_sigma) and (1 + edge_sigma) times the median.",
    )
    edge_thin: bool = Field(True, description="Thin extracted edges to one pixel (Zhang-Suen).")
    edge_min_component: int = Field(
        8,
        ge=0,
        le=65536,
        description="Drop extracted edge fragments with fewer pixels than this (0 keeps all).",
    )

    # inference
    dropout_at_inference: bool = Field(
        False,
        description="Keep dropout on at inference: varied outputs for one input, not a deterministic one.",
    )
    max_side: int = Field(
        1024,
        ge=16,
        le=16384,
        description="Inputs (or tiles) with a longer side are shrunk to it for the generator, and the "
        "result resized back. Images above 1024 px run in tiles of 1024 at their own resolution, so "
        "this matters with tiling off (tile=0); set below 1024, it shrinks each tile.",
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_levels(cls, data: Any) -> Any:
        # Filled in here rather than left unset so that saved weights record their depth: a
        # later image_size override then fails validation instead of building another shape.
        if isinstance(data, dict) and data.get("num_downs") is None:
            size = data.get("image_size", cls.model_fields["image_size"].default)
            if isinstance(size, int) and size > 0:
                data = {**data, "num_downs": _levels_for(size)}
        return data

    @model_validator(mode="after")
    def _check_sizes(self) -> Edges2PhotoConfig:
        multiple = 2**self.levels
        if self.image_size % multiple:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of 2**num_downs = {multiple}: use a "
                "multiple (256 for 8 levels, 128 for 7, 64 for 6) or lower num_downs"
            )
        # Each stride-2 layer halves the crop and the last two 4x4 layers take 3 pixels off.
        smallest = 3 * 2**self.disc_layers
        if self.gan_weight > 0 and self.image_size < smallest:
            raise ValueError(
                f"image_size {self.image_size} is too small for disc_layers={self.disc_layers} "
                f"(needs at least {smallest}): lower disc_layers"
            )
        return self

    @property
    def levels(self) -> int:
        """The U-Net depth actually used (``num_downs``, derived from ``image_size`` when unset)."""
        return self.num_downs if self.num_downs is not None else _levels_for(self.image_size)
