"""The ``superres`` (2x) and ``superres-x4`` tasks: a picture in, the same picture ``scale``
times larger per side out.

    inference   image ─▶ RGB tensor at the image's own size ─▶ network ─▶ clamped, scale x larger
                (a gray image comes back gray: the mean of the three output channels)
    training    high-res crop ─▶ (its area-averaged downscale, the crop) ─▶ L1 loss
                paired data (``paired:DIR``, A/ low-res, B/ ``scale`` times larger) is used as it is

Training crops are cut from the full-resolution picture (``crop="native"``), never resized, so
the network learns real fine detail; ``image_size`` is the high-resolution crop, its input is
``image_size / scale``. Inference never resizes: the fully convolutional network takes any size.

The low-resolution input is made with OpenCV's ``INTER_AREA``: at a whole-number factor it is
the mean of each ``scale x scale`` block, an exact box filter, so it does not alias (a plain
bicubic downscale samples without low-pass filtering and leaves jaggies that a model would learn
to expect), it is what binning camera pixels does, and it is cheap in the data workers.

Metrics compare RGB in [0, 1] after cutting a border of ``scale`` pixels from every side, the
usual convention in the super-resolution literature (the border lacks the neighbours a pixel is
inferred from, for the network and for bicubic alike). Model-space tensors are RGB in [0, 1].
torch and the model are imported inside the methods, so that ``imgzoo list`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from imgzoo import Task, TaskConfig
from pydantic import Field, field_validator

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import torch
    from imgzoo import Model, Sample

__all__ = ["SuperResolutionConfig", "SuperResolutionTask", "SuperResolutionX4Config", "SuperResolutionX4Task"]


class SuperResolutionConfig(TaskConfig):
    """Settings of ``superres`` (``--set key=value``, or keyword arguments of ``imgzoo.run``)."""

    scale: ClassVar[int] = 2

    image_size: int = Field(
        96,
        ge=8,
        le=8192,
        description="Training crop of the high-resolution picture (a multiple of the scale); the "
        "network's input crop is this divided by the scale. Inference takes any size.",
    )
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    width: int = Field(32, ge=1, le=256, description="Channels of the network's residual blocks.")
    blocks: int = Field(4, ge=0, le=64, description="Residual blocks at the input's resolution.")

    @field_validator("image_size")
    @classmethod
    def _divisible_by_scale(cls, value: int) -> int:
        if value % cls.scale:
            raise ValueError(
                f"must be a multiple of the scale {cls.scale}, so that the input crop is whole pixels: "
                f"try {value - value % cls.scale or cls.scale}"
            )
        return value


class SuperResolutionX4Config(SuperResolutionConfig):
    """Settings of ``superres-x4``: those of ``superres``, at four times per side."""

    scale: ClassVar[int] = 4


class SuperResolutionTask(Task):
    """2x super-resolution: residual blocks at low resolution, a pixel-shuffle upsampler and a
    global residual over bicubic interpolation."""

    name = "superres"
    description = "Enlarge a picture 2x per side, restoring detail (a small residual CNN, pixel shuffle)"
    scale: ClassVar[int] = 2
    Config = SuperResolutionConfig
    config: SuperResolutionConfig
    # Small settings that keep imgzoo.testing's contract checks fast. A fresh network is already
    # bicubic, close to the target, and Adam's first step moves every weight by the whole
    # learning rate: a smaller one keeps that single step of the contract from overshooting.
    test_overrides: ClassVar[dict[str, object]] = {
        "width": 4,
        "blocks": 1,
        "image_size": 16,
        "learning_rate": 1e-4,
    }

    # ── models ────────────────────────────────────────────────────────────────────────────
    def build_models(self) -> dict[str, Model]:
        from imgzoo_superres.model import build_upscaler

        return {"model": build_upscaler(self.scale, width=self.config.width, blocks=self.config.blocks)}

    # ── inference ─────────────────────────────────────────────────────────────────────────
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return _to_tensor(image)[None]

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        enlarged = output.float().clamp(0, 1)
        if image.shape[2] == 1:
            enlarged = enlarged.mean(dim=0, keepdim=True)
        return enlarged.permute(1, 2, 0).contiguous().numpy()

    # ── training ──────────────────────────────────────────────────────────────────────────
    def augmentations(self) -> dict[str, Any]:
        return {"random_crop": True, "flip": True, "crop": "native"}

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        if sample.target is not None:
            return _to_tensor(sample.image), _to_tensor(sample.target)
        return _to_tensor(downscale(sample.image, self.scale)), _to_tensor(sample.image)

    # ── evaluation ────────────────────────────────────────────────────────────────────────
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
        return self.forward(models, inputs).clamp(0, 1)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
        """PSNR and SSIM of the result, the PSNR of bicubic interpolation of the input, and the
        gain over it; RGB in [0, 1], a border of ``scale`` pixels left out."""
        from imgzoo.metrics import psnr, ssim

        from imgzoo_superres.model import bicubic_upscale

        shave = self.scale
        results, references, bicubic = (
            self.to_display(tensor)[..., shave:-shave, shave:-shave]
            for tensor in (outputs, targets, bicubic_upscale(inputs.float(), self.scale))
        )
        quality = {"psnr": psnr(results, references), "ssim": ssim(results, references)}
        quality["psnr_bicubic"] = psnr(bicubic, references)
        quality["psnr_gain"] = quality["psnr"] - quality["psnr_bicubic"]
        return quality


class SuperResolutionX4Task(SuperResolutionTask):
    """4x super-resolution: the network of ``superres`` with a 4x pixel shuffle."""

    name = "superres-x4"
    description = "Enlarge a picture 4x per side, restoring detail (a small residual CNN, pixel shuffle)"
    scale: ClassVar[int] = 4
    Config = SuperResolutionX4Config
    config: SuperResolutionX4Config


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """HxWxC ``image`` made ``scale`` times smaller per side by averaging ``scale x scale`` blocks
    (OpenCV ``INTER_AREA``); a side that is not a multiple of ``scale`` loses its last pixels."""
    import cv2
    import numpy as np

    height, width = image.shape[0] // scale, image.shape[1] // scale
    whole = np.ascontiguousarray(image[: height * scale, : width * scale], dtype=np.float32)
    small = cv2.resize(whole, (width, height), interpolation=cv2.INTER_AREA)
    # OpenCV drops a trailing channel axis of size 1: keep gray HxWx1.
    return small.reshape(height, width, image.shape[2])


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC float image (C = 1 or 3) to a 3xHxW float32 tensor."""
    import numpy as np
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    return tensor.expand(3, -1, -1).contiguous() if tensor.shape[0] == 1 else tensor
