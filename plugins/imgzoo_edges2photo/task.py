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
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from imgzoo import ExportError, Sample, StepContext, Task, Tiling
from imgzoo.metrics import checkerboard, colorfulness, l1, luma, psnr, sharpness, ssim
from imgzoo_edges2photo.config import Edges2PhotoConfig
from imgzoo_edges2photo.edges import edge_map_issue, extract_edges
from imgzoo_edges2photo.patchgan import build_patchgan
from imgzoo_edges2photo.unet import FusedUNet, UNetGenerator, build_unet

__all__ = ["Edges2PhotoTask"]

ADAM_BETAS = (0.5, 0.999)  # pix2pix's: a lower beta1 keeps the adversarial game from oscillating


class Edges2PhotoTask(Task):
    """Edge map (or line drawing) to photo with pix2pix's U-Net and conditional PatchGAN."""

    name = "edges2photo"
    inference_model_name = "generator"
    primary_metric = ("ssim", "max")  # not PSNR: it rewards the blur the GAN loss is there to remove
    test_overrides: ClassVar[Mapping[str, Any]] = {"ngf": 8, "ndf": 8, "image_size": 32}
    # The U-Net sees hundreds of pixels around each one, so tiles cannot match the whole image
    # exactly; 128 shared pixels, 32 of them dropped at each cut edge, make the cross-fade
    # invisible (see the tiling tests). Tiles start on the 256-pixel grid of the 8 levels.
    tiling = Tiling(tile=1024, overlap=128, halo=32, multiple=256)
    Config = Edges2PhotoConfig
    config: Edges2PhotoConfig
    # How the edges are read or drawn, and dropout's sampling: neither the U-Net's shape nor the
    # size it runs at (max_side) changes.
    request_options = (
        "extract_edges",
        "edge_sigma",
        "edge_thin",
        "edge_min_component",
        "dropout_at_inference",
    )

    # ── models ────────────────────────────────────────────────────────────────────────────
    def build_models(self) -> dict[str, torch.nn.Module]:
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
        generator = models["generator"]
        # A generator still in training mode normalises with batch statistics, which a folded
        # copy could not reproduce: it runs as it is.
        if not isinstance(generator, UNetGenerator) or generator.training:
            return models
        return {**models, "generator": generator.fused_for_inference()}

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """Shrunk to ``max_side``, then padded to the U-Net's multiple."""
        multiple = 2**self.config.levels
        height, width = _working_size(height, width, self.config.max_side)
        return height + -height % multiple, width + -width % multiple

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
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
        """The generator's photo (3 channels in [-1, 1]), and a fourth channel holding the
        drawing's domain score everywhere (0 without domain statistics), for :meth:`postprocess`
        to warn about."""
        sample = self.config.dropout_at_inference
        if self.domain_statistics is None:
            photo = models["generator"](inputs, sample=sample)
            score = photo.new_zeros(photo.shape[0])
        else:
            # One pass: the features come from the generator's encoder on the way.
            photo, features = models["generator"](inputs, sample=sample, with_domain_features=True)
            score = self.domain_statistics.score(features)
        score_plane = score.to(photo.dtype).view(-1, 1, 1, 1).expand(-1, 1, *photo.shape[2:])
        return torch.cat([photo, score_plane], dim=1)

    def domain_features(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        """The U-Net encoder's features at ``unet.DOMAIN_LEVEL``."""
        generator = cast(UNetGenerator | FusedUNet, models["generator"])
        return generator.domain_features(inputs)

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        """The photo, cropped from the padding and brought back to the image's size; warns when
        the drawing lies far from the training drawings (its score past the statistics'
        ``fade_start``: edges2photo fades nothing, it says so)."""
        statistics, score = self.domain_statistics, float(output[3, 0, 0])
        if statistics is not None and score > float(statistics.fade_start):
            warnings.warn(
                f"edges2photo: this drawing looks unlike its training data (score {score:.2f}; its training "
                f"drawings score up to {float(statistics.fade_start):.2f}); expect a poor picture",
                stacklevel=2,
            )
        height, width = _working_size(image.shape[0], image.shape[1], self.config.max_side)
        photo = ((output[:3, :height, :width].float() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        if (height, width) != image.shape[:2]:
            photo = np.clip(
                cv2.resize(photo, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1
            )
        return np.ascontiguousarray(photo, dtype=np.float32)

    def standalone_module(self, models: Mapping[str, torch.nn.Module]) -> torch.nn.Module:
        """:meth:`preprocess`, :meth:`forward` and :meth:`postprocess` in one module, uint8 picture
        in and uint8 RGB out. It runs a picture whole at its own size, as ``run()`` does up to
        ``max_side`` (1024); ``run()`` cuts a larger one into tiles, which the result of the
        whole picture matches within the tiles' cross-fade."""
        config = self.config
        if config.extract_edges:
            raise ExportError(
                "edges2photo: a standalone export cannot draw a photo's edges (extract_edges): its "
                "Canny edge detection and thinning are OpenCV and numpy code",
                task=self.name,
                format="onnx",
            )
        if config.max_side < (self.tiling.tile if self.tiling is not None else config.max_side):
            raise ExportError(
                f"edges2photo: a standalone export runs a picture at its own size, so it cannot shrink it to "
                f"max_side={config.max_side} as preprocess does",
                task=self.name,
                format="onnx",
            )
        return StandaloneEdges2Photo(self, models)

    # ── training ──────────────────────────────────────────────────────────────────────────
    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
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

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The edge map of the photo, drawn as the training inputs are."""
        return self._edges(image)

    def augmentations(self) -> dict[str, Any]:
        # pix2pix's jitter: upscale to 286/256 of the crop size, crop at random, mirror.
        return {"jitter_resize": 286 * self.config.image_size // 256, "random_crop": True, "flip": True}

    def configure_optimizers(self, models: Mapping[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
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
                fake_logits, fake_features = discriminator(inputs, fakes, with_features=True)
                adversarial = self._gan_loss(fake_logits, real=True)
                if config.feature_matching_weight > 0:
                    with torch.no_grad():
                        _, real_features = discriminator(inputs, targets, with_features=True)
                    matching = torch.stack(
                        [
                            F.l1_loss(fake.float(), real.float())
                            for fake, real in zip(fake_features, real_features, strict=True)
                        ]
                    ).mean()
                    g_loss = g_loss + config.feature_matching_weight * matching
                    losses["feature_matching"] = matching.detach()
            finally:
                discriminator.requires_grad_(True)
            g_loss = g_loss + config.gan_weight * adversarial
            losses["gan"] = adversarial.detach()
        losses["generator"] = ctx.optimize("generator", g_loss)
        losses["l1"] = l1.detach()
        return losses

    # ── evaluation ────────────────────────────────────────────────────────────────────────
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
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
        config = self.config
        return extract_edges(
            image, thin=config.edge_thin, min_component=config.edge_min_component, sigma=config.edge_sigma
        )

    def _gan_loss(self, logits: torch.Tensor, *, real: bool) -> torch.Tensor:
        logits = logits.float()
        wanted = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if self.config.gan_loss == "lsgan":
            return F.mse_loss(logits, wanted)
        return F.binary_cross_entropy_with_logits(logits, wanted)


class StandaloneEdges2Photo(torch.nn.Module):
    """``run("edges2photo", picture)`` for one uint8 HxWxC picture (C = 1 or 3): uint8 HxWx3."""

    def __init__(self, task: Edges2PhotoTask, models: Mapping[str, torch.nn.Module]) -> None:
        super().__init__()
        self.task = task
        self.models = torch.nn.ModuleDict(dict(models))

    def forward(self, picture: torch.Tensor) -> torch.Tensor:
        size = torch._shape_as_tensor(picture)
        height, width = size[0], size[1]
        pixels = picture.float() / 255
        # Gray as preprocess reads it: BT.601 luma of RGB; a gray picture broadcasts into R = G = B,
        # whose luma is itself, so one graph takes 1 and 3 channels.
        lines = luma(pixels * torch.ones(3))
        multiple = 2**self.task.config.levels
        padded = F.pad(
            lines.permute(2, 0, 1)[None],
            [0, (-width) % multiple, 0, (-height) % multiple],
            value=1.0,
        )
        output = self.task.forward(dict(self.models.items()), (padded * 2 - 1).expand(-1, 3, -1, -1))
        # The photo's channels; the fourth, the drawing's domain score, is a warning run() gives
        # and a graph cannot.
        photo = ((output[0, :3, :height, :width].float() + 1) / 2).clamp(0, 1)
        return (photo.permute(1, 2, 0) * 255).round().to(torch.uint8)


def _photo_metrics(images: torch.Tensor, references: torch.Tensor) -> dict[str, float]:
    """L1, PSNR and SSIM to the photos; how colourful and how sharp the results are relative to
    them (1.0: as much as the photos; L1-only training gives well under 1); and their 2x2
    checkerboard energy relative to the photos' (transposed convolutions leave one). Both
    arguments are RGB in [0, 1]."""
    return {
        "l1": l1(images, references),
        "psnr": psnr(images, references),
        "ssim": ssim(images, references),
        "colorfulness_ratio": colorfulness(images) / max(colorfulness(references), 1e-6),
        "sharpness_ratio": sharpness(images) / max(sharpness(references), 1e-6),
        "checkerboard_ratio": checkerboard(images) / max(checkerboard(references), 1e-6),
    }


def _working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The size an image is processed at: shrunk, aspect kept, so its long side is at most ``max_side``."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _gray(image: np.ndarray) -> np.ndarray:
    """HxWx1 float32 luma (ITU-R BT.601, as OpenCV) of an HxWx1 or HxWx3 image."""
    if image.shape[2] == 1:
        return image.astype(np.float32, copy=False)
    return luma(image)


def _keep_channels(resized: np.ndarray, original: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing axis of size 1; put it back."""
    return resized[..., None] if resized.ndim == original.ndim - 1 else resized
