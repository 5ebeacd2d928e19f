"""``edges2photo``: an edge map or a line drawing in, a photo out (pix2pix, Isola et al. 2017).

A U-Net generator (:mod:`imgzoo_edges2photo.unet`) turns black lines on white into a colour
picture; during training a conditional PatchGAN (:mod:`imgzoo_edges2photo.patchgan`) judges
(edges, photo) pairs, and the generator minimises ``l1_weight * L1 + gan_weight * GAN``:
L1 gets the colours and layout right, the GAN loss makes the result sharp instead of the blurry
average L1 alone settles for. ``gan_weight=0`` trains the L1-only U-Net baseline.

Inference (``imgzoo.run("edges2photo", image)``)
    The input is read as gray (edge maps carry no colour, so a coloured drawing works like a
    black-and-white one) and repeated into the generator's 3 input channels. Any size works:
    it is padded with white, the background of an edge map, to a multiple of ``2**num_downs``
    (256 for the default 8 levels) and the output is cropped back, so the result always has
    the input's size. An image larger than 1024 px runs at its own resolution in tiles of up to
    1024 (see ``tiling``); with tiling off (``tile=0``) an image whose long side exceeds
    ``max_side`` is shrunk to it first and its output resized back up, so it comes back softer.
    ``extract_edges=True`` draws the edges of a photo first with
    :func:`imgzoo_edges2photo.edges.extract_edges`, the same function that makes the training
    inputs (in a tiled run, tile by tile: Canny's thresholds follow each tile's median).
    Inference is deterministic (eval mode); ``dropout_at_inference=True`` keeps the generator's
    dropout on, pix2pix's only source of variety.

Bad inputs
    Any readable image gives a result of its size: all-white gives the model's idea of an empty
    scene, 1x1 and 3000x20 are padded (and shrunk) as above. An input that does not look like an
    edge map (a photo without ``extract_edges``, or white lines on black) still runs, garbage in
    and garbage out, but raises a ``UserWarning`` saying what looks wrong.

Training data
    A folder of photos or ``minifigs``: the input is ``extract_edges(photo)``. Paired data
    (``A/`` + ``B/`` folders, pix2pix's ``aligned:`` files such as edges2shoes): the sample's
    own input, read as gray. pix2pix's jitter (resize to 286, random 256 crop, mirror) comes from
    :meth:`Edges2PhotoTask.augmentations`.

This module imports torch, OpenCV and the model code inside methods only, so that listing the
tasks stays light.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from imgzoo import StepContext, Task, TaskConfig, Tiling

if TYPE_CHECKING:
    import numpy as np
    import torch

    from imgzoo import Model, Sample

__all__ = ["Edges2PhotoConfig", "Edges2PhotoTask"]

MAX_LEVELS = 8  # pix2pix's depth: a 1x1 bottleneck at 256x256
ADAM_BETAS = (0.5, 0.999)  # pix2pix's: a lower beta1 keeps the adversarial game from oscillating


class Edges2PhotoTask(Task):
    """Edge map (or line drawing) to photo with pix2pix's U-Net and conditional PatchGAN."""

    name = "edges2photo"
    description = "Edge map or line drawing to photo (pix2pix: U-Net generator, PatchGAN discriminator)"
    inference_model = "generator"
    primary_metric = ("ssim", "max")  # not PSNR: it rewards the blur the GAN loss is there to remove
    test_overrides: ClassVar[Mapping[str, Any]] = {"ngf": 8, "ndf": 8, "image_size": 32}
    # The U-Net sees hundreds of pixels around each one, so tiles cannot match the whole image
    # exactly; 128 shared pixels, 32 of them dropped at each cut edge, make the cross-fade
    # invisible (see the tiling tests). Tiles start on the 256-pixel grid of the 8 levels.
    tiling = Tiling(tile=1024, overlap=128, halo=32, multiple=256)

    config: Edges2PhotoConfig

    # ── models ────────────────────────────────────────────────────────────────────────────
    def build_models(self) -> dict[str, Model]:
        from imgzoo_edges2photo.patchgan import build_patchgan
        from imgzoo_edges2photo.unet import build_unet

        config = self.config
        return {
            "generator": build_unet(
                ngf=config.ngf,
                num_downs=config.levels,
                norm=config.norm,
                dropout=config.dropout,
                upsample=config.upsample,
            ),
            "discriminator": build_patchgan(ndf=config.ndf, n_layers=config.disc_layers, norm=config.norm),
        }

    # ── inference ─────────────────────────────────────────────────────────────────────────
    def prepare_inference(self, models: Mapping[str, torch.nn.Module]) -> Mapping[str, torch.nn.Module]:
        from imgzoo_edges2photo.unet import UNetGenerator

        generator = models["generator"]
        # A generator still in training mode normalises with batch statistics, which a folded
        # copy could not reproduce: it runs as it is.
        if not isinstance(generator, UNetGenerator) or generator.training:
            return models
        return {**models, "generator": generator.fused_for_inference()}

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        import cv2
        import numpy as np
        import torch

        from imgzoo_edges2photo.edges import edge_map_issue

        config = self.config
        height, width = _working_size(image.shape[0], image.shape[1], config.max_side)
        if (height, width) != image.shape[:2]:
            # Area averaging: shrinking must not drop thin lines between samples.
            image = _keep_channels(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), image)
        if config.extract_edges:
            lines = self._edges(image)
        else:
            issue = edge_map_issue(image)
            if issue is not None:
                warnings.warn(f"edges2photo: the input does not look like an edge map: {issue}", stacklevel=2)
            lines = _gray(image)
        multiple = 2**config.levels
        padded = np.pad(
            lines,
            ((0, -height % multiple), (0, -width % multiple), (0, 0)),
            constant_values=1.0,  # white paper: adds no lines
        )
        gray = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None]
        return (gray * 2 - 1).expand(-1, 3, -1, -1).contiguous()

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return models["generator"](inputs, sample=self.config.dropout_at_inference)

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        import cv2
        import numpy as np

        height, width = _working_size(image.shape[0], image.shape[1], self.config.max_side)
        photo = ((output[:, :height, :width].float() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        if (height, width) != image.shape[:2]:
            photo = np.clip(
                cv2.resize(photo, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1
            )
        return np.ascontiguousarray(photo, dtype=np.float32)

    # ── training ──────────────────────────────────────────────────────────────────────────
    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        import numpy as np
        import torch

        if sample.target is not None:
            lines, photo = _gray(sample.image), sample.target
        else:
            lines, photo = self._edges(sample.image), sample.image

        def to_model(pixels: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)
            return tensor * 2 - 1

        inputs, target = to_model(lines).expand(3, -1, -1).contiguous(), to_model(photo)
        if target.shape[0] == 1:
            target = target.expand(3, -1, -1).contiguous()
        return inputs, target

    def degrade(self, image: np.ndarray) -> np.ndarray:
        """The edge map of the photo, drawn as the training inputs are."""
        return self._edges(image)

    def augmentations(self) -> dict[str, Any]:
        # pix2pix's jitter: upscale to 286/256 of the crop size, crop at random, mirror.
        return {"jitter_resize": 286 * self.config.image_size // 256, "random_crop": True, "flip": True}

    def configure_optimizers(self, models: Mapping[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        import torch

        names = ["generator", "discriminator"] if self.config.gan_weight > 0 else ["generator"]
        return {
            name: torch.optim.Adam(models[name].parameters(), lr=self.config.learning_rate, betas=ADAM_BETAS)
            for name in names
        }

    def training_step(
        self,
        models: Mapping[str, torch.nn.Module],
        batch: tuple[torch.Tensor, torch.Tensor],
        ctx: StepContext,
    ) -> dict[str, torch.Tensor]:
        import torch.nn.functional as F

        inputs, targets = batch
        generator, discriminator = models["generator"], models["discriminator"]
        config = self.config
        fakes = generator(inputs)
        losses: dict[str, torch.Tensor] = {}

        # Discriminator: real pairs towards "real", generated ones towards "fake". Detached, so
        # this step does not reach the generator; real and fake go in separate batches, as in
        # pix2pix, so batch norm never mixes their statistics.
        if config.gan_weight > 0:
            real_logits = discriminator(inputs, targets)
            fake_logits = discriminator(inputs, fakes.detach())
            d_loss = 0.5 * (self._gan_loss(real_logits, real=True) + self._gan_loss(fake_logits, real=False))
            losses["discriminator"] = ctx.optimize("discriminator", d_loss)

        # Generator: L1 to the photo, plus fooling the (now updated) discriminator.
        l1 = F.l1_loss(fakes.float(), targets.float())
        g_loss = config.l1_weight * l1
        if config.gan_weight > 0:
            # Frozen while building the graph: the generator's backward then computes no
            # discriminator weight gradients, which would be wasted work and, left in .grad,
            # leak into the discriminator's next step.
            discriminator.requires_grad_(False)
            try:
                adversarial = self._gan_loss(discriminator(inputs, fakes), real=True)
            finally:
                discriminator.requires_grad_(True)
            g_loss = g_loss + config.gan_weight * adversarial
            losses["gan"] = adversarial.detach()
        losses["generator"] = ctx.optimize("generator", g_loss)
        losses["l1"] = l1.detach()
        return losses

    # ── evaluation ────────────────────────────────────────────────────────────────────────
    def predict(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        # Never sampled: evaluation numbers must not depend on dropout_at_inference.
        return models["generator"](inputs)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
        return _photo_metrics(self.to_display(outputs), self.to_display(targets))

    def image_metrics(
        self, results: torch.Tensor, truths: torch.Tensor, inputs: torch.Tensor
    ) -> dict[str, float]:
        return _photo_metrics(results, truths)

    def to_display(self, tensor: torch.Tensor) -> torch.Tensor:
        batch = ((tensor.float() + 1) / 2).clamp(0, 1)
        return batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch

    # ── helpers ───────────────────────────────────────────────────────────────────────────
    def _edges(self, image: np.ndarray) -> np.ndarray:
        from imgzoo_edges2photo.edges import extract_edges

        config = self.config
        return extract_edges(
            image, thin=config.edge_thin, min_component=config.edge_min_component, sigma=config.edge_sigma
        )

    def _gan_loss(self, logits: torch.Tensor, *, real: bool) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        logits = logits.float()
        wanted = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if self.config.gan_loss == "lsgan":
            return F.mse_loss(logits, wanted)
        return F.binary_cross_entropy_with_logits(logits, wanted)


_FIELDS_BEFORE_UPSAMPLE = frozenset(
    {
        "image_size", "learning_rate", "ngf", "ndf", "num_downs", "norm", "dropout", "disc_layers",
        "gan_loss", "gan_weight", "l1_weight", "extract_edges", "edge_sigma", "edge_thin",
        "edge_min_component", "dropout_at_inference", "max_side",
    }
)  # fmt: skip


def _photo_metrics(images: torch.Tensor, references: torch.Tensor) -> dict[str, float]:
    """L1, PSNR and SSIM to the photos; how colourful and how sharp the results are relative to
    them (1.0: as much as the photos; L1-only training gives well under 1); and their 2x2
    checkerboard energy relative to the photos' (transposed convolutions leave one). Both
    arguments are RGB in [0, 1]."""
    from imgzoo.metrics import checkerboard, colourfulness, l1, psnr, sharpness, ssim

    return {
        "l1": l1(images, references),
        "psnr": psnr(images, references),
        "ssim": ssim(images, references),
        "colourfulness_ratio": colourfulness(images) / max(colourfulness(references), 1e-6),
        "sharpness_ratio": sharpness(images) / max(sharpness(references), 1e-6),
        "checkerboard_ratio": checkerboard(images) / max(checkerboard(references), 1e-6),
    }


def _levels_for(image_size: int) -> int:
    """How many times ``image_size`` halves evenly, within [2, MAX_LEVELS]: the default depth."""
    halvings = (image_size & -image_size).bit_length() - 1
    return max(2, min(MAX_LEVELS, halvings))


def _working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The size an image is processed at: shrunk, aspect kept, so its long side is at most ``max_side``."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _gray(image: np.ndarray) -> np.ndarray:
    """HxWx1 float32 luma (ITU-R BT.601, as OpenCV) of an HxWx1 or HxWx3 image."""
    import numpy as np

    from imgzoo.images import luma

    if image.shape[2] == 1:
        return image.astype(np.float32, copy=False)
    return luma(image)


def _keep_channels(resized: np.ndarray, original: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing axis of size 1; put it back."""
    return resized[..., None] if resized.ndim == original.ndim - 1 else resized


# ── config ───────────────────────────────────────────────────────────────────────────────────


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
        8, ge=0, description="Drop extracted edge fragments with fewer pixels than this (0 keeps all)."
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
    def _read_configs_before_upsample(cls, data: Any) -> Any:
        # Weights record their whole config; those written before `upsample` existed carry every
        # field of that time but this one, and their decoder is transposed convolutions.
        if isinstance(data, dict) and "upsample" not in data and data.keys() >= _FIELDS_BEFORE_UPSAMPLE:
            data = {**data, "upsample": "transposed"}
        return data

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


# ── registration ─────────────────────────────────────────────────────────────────────────────

Edges2PhotoTask.Config = Edges2PhotoConfig
