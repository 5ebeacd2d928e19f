"""The super-resolution network: residual blocks at low resolution, a pixel-shuffle upsampler,
and a global residual over the bicubic enlargement of the input.

    low-res 3 x h x w ─ head ─┬─ residual blocks ─ conv ─(+)─ conv to 3·s² ─ pixel shuffle ─(+)─ 3 x sh x sw
                              └──────── skip ──────────┘                                  │
    low-res ─────────────────────── bicubic x s ──────────────────────────────────────────┘

Every convolution runs at the input's resolution, so the cost is that of an ``h x w`` image
whatever the scale; only the last layer makes ``s²`` times more channels, which the pixel
shuffle rearranges into an ``s`` times larger picture (ESPCN). The residual blocks have no
batch norm (EDSR: it removes the range flexibility that restoration needs and costs time).
The network predicts the *detail* that bicubic interpolation misses, and its last layer starts
at zero, so a fresh one is exactly bicubic and training starts from that baseline. About 80k
parameters at width 32 with 4 blocks (160 kB as fp16). Any input size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from imgzoo import Model
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

__all__ = ["SuperResolutionConfig", "SuperResolutionNet", "bicubic_upscale", "build_upscaler"]

CHANNELS = 3


def bicubic_upscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """NxCxHxW ``images`` enlarged ``scale`` times per side, bicubically (not clamped)."""
    # align_corners=False puts pixel centres where OpenCV's INTER_AREA downscale put them, so
    # enlarging an area-averaged image lines up with the picture it came from.
    return F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)


class SuperResolutionConfig(BaseModel):
    """The architecture."""

    model_config = ConfigDict(extra="forbid")

    scale: int = Field(2, ge=2, le=8, description="How many times larger the output is, per side.")
    width: int = Field(32, ge=1, le=256, description="Channels of the residual blocks.")
    blocks: int = Field(4, ge=0, le=64, description="Residual blocks at the input's resolution.")


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class ResidualBlock(nn.Module):
    """conv, ReLU, conv, added to the block's input (no batch norm)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(width, width), nn.ReLU(inplace=True), _conv(width, width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class SuperResolutionNet(Model):
    """Low-resolution RGB (Nx3xhxw in [0, 1]) to its ``scale`` times larger estimate (not clamped)."""

    config: SuperResolutionConfig

    def __init__(self, config: SuperResolutionConfig) -> None:
        super().__init__(config)
        width, scale = config.width, config.scale
        self.head = _conv(CHANNELS, width)
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(config.blocks)), _conv(width, width))
        self.upsample = nn.Sequential(_conv(width, CHANNELS * scale * scale), nn.PixelShuffle(scale))
        last = self.upsample[0]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, low_resolution: torch.Tensor) -> torch.Tensor:
        features = self.head(low_resolution)
        detail = self.upsample(features + self.body(features))
        return bicubic_upscale(low_resolution, self.config.scale) + detail


def build_upscaler(scale: int = 2, width: int = 32, blocks: int = 4) -> SuperResolutionNet:
    """A freshly initialised network (bicubic interpolation until trained)."""
    return SuperResolutionNet(SuperResolutionConfig(scale=scale, width=width, blocks=blocks))
