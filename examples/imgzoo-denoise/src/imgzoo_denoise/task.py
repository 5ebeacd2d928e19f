"""The ``denoise`` task: a noisy image in, the clean image out.

    inference   image ─▶ RGB tensor at the image's own size ─▶ autoencoder ─▶ clamped to [0, 1]
                (a gray image comes back gray: the mean of the three output channels)
    training    clean crop ─▶ (the crop with the configured noise added, the crop) ─▶ L1 loss
                paired data (``paired:DIR``, A/ noisy and B/ clean) is used as it is

Inference never resizes: noise lives at the pixel level, so the fully convolutional network
sees every pixel; ``image_size`` is only the training crop size. Images larger than 512 px run
in tiles: an output pixel depends on input pixels at most 8 away, so tiles that overlap by 24
and drop 8 pixels at each cut edge give the untiled result. Model-space tensors are RGB in
[0, 1]. torch and the model are imported inside the methods, so that ``imgzoo list`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from imgzoo import Task, TaskConfig, Tiling
from pydantic import Field

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import torch
    from imgzoo import Model, Sample

__all__ = ["DenoiseConfig", "DenoiseTask"]


class DenoiseConfig(TaskConfig):
    """Settings of ``denoise`` (``--set key=value``, or keyword arguments of ``imgzoo.run``)."""

    image_size: int = Field(
        64,
        ge=8,
        le=8192,
        description="Training crop size. Inference runs at the image's own size, whatever this is.",
    )
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate.")
    noise: Literal["gaussian", "salt_pepper", "jpeg"] = Field(
        "gaussian",
        description="The noise training inputs get: 'gaussian' (sensor noise), 'salt_pepper' (dead "
        "pixels) or 'jpeg' (compression artefacts). Paired data brings its own noisy inputs.",
    )
    strength: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="How strong the noise is: gaussian, its standard deviation (0.1 = 25.5/255); "
        "salt_pepper, the fraction of pixels hit; jpeg, 1 - quality/100 (0.9 = quality 10).",
    )
    width: int = Field(
        32, ge=1, le=256, description="Channels of the autoencoder at full resolution (twice that at half)."
    )


class DenoiseTask(Task):
    """Denoising with a small convolutional autoencoder that predicts a correction to its input."""

    name = "denoise"
    description = "Remove Gaussian, salt-and-pepper or JPEG noise (a small convolutional autoencoder)"
    Config = DenoiseConfig
    config: DenoiseConfig
    # Small settings that keep imgzoo.testing's contract checks fast.
    test_overrides: ClassVar[dict[str, object]] = {"width": 4, "image_size": 16}
    # Halo 8: the reach of the autoencoder's convolutions; multiple 2: its one stride-2 level.
    tiling = Tiling(tile=512, overlap=24, halo=8, multiple=2)

    # ── models ────────────────────────────────────────────────────────────────────────────
    def build_models(self) -> dict[str, Model]:
        from imgzoo_denoise.model import build_denoiser

        return {"model": build_denoiser(width=self.config.width)}

    # ── inference ─────────────────────────────────────────────────────────────────────────
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return _to_tensor(image)[None]

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        clean = output.float().clamp(0, 1)
        if image.shape[2] == 1:
            clean = clean.mean(dim=0, keepdim=True)
        return clean.permute(1, 2, 0).contiguous().numpy()

    # ── training ──────────────────────────────────────────────────────────────────────────
    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        if sample.target is not None:
            return _to_tensor(sample.image), _to_tensor(sample.target)
        return _to_tensor(self.degrade(sample.image, sample.rng)), _to_tensor(sample.image)

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The clean image with the noise the model was trained against, drawn from ``rng``
        (the sample's own generator: the same draw for a crop at every evaluation, and for a
        training step on every resume)."""
        from imgzoo_denoise.noise import add_noise

        return add_noise(image, self.config.noise, self.config.strength, rng)

    # ── evaluation ────────────────────────────────────────────────────────────────────────
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
        return self.forward(models, inputs).clamp(0, 1)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
        """PSNR and SSIM of the result, the noisy input's own PSNR, and the gain between them."""
        from imgzoo.metrics import psnr, ssim

        results, references = self.to_display(outputs), self.to_display(targets)
        quality = {"psnr": psnr(results, references), "ssim": ssim(results, references)}
        quality["psnr_noisy"] = psnr(self.to_display(inputs), references)
        quality["psnr_gain"] = quality["psnr"] - quality["psnr_noisy"]
        return quality

    def image_metrics(
        self, results: torch.Tensor, truths: torch.Tensor, inputs: torch.Tensor
    ) -> dict[str, float]:
        """As :meth:`metrics`, on the pictures ``run()`` was given and returned."""
        return self.metrics(results, truths, inputs)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC float image (C = 1 or 3) to a 3xHxW float32 tensor."""
    import numpy as np
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    return tensor.expand(3, -1, -1).contiguous() if tensor.shape[0] == 1 else tensor
