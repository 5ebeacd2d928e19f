"""The pix2pix discriminator: a conditional PatchGAN (Isola et al. 2017, section 3.2.2).

Instead of one real/fake verdict per image it gives one per overlapping patch, as a map of
logits: a fully convolutional stack whose every output sees a 70x70 window of the input (for
the default three stride-2 layers). Blurry outputs are caught locally, while the L1 loss takes
care of the low frequencies. It is *conditional*: it sees the input edge map and the photo
concatenated (3 + 3 = 6 channels), so it judges whether the photo fits the edges, not only
whether it looks real::

    C64 (no norm) - C128 - C256 - C512 (stride 1) - 1 logit per patch     (LeakyReLU 0.2 between)

A 256x256 pair gives a 30x30 map. The parameters equal the reference implementation's
(2,768,705 for ``ndf=64`` with batch norm and 6 input channels).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from imgzoo import Model
from imgzoo_edges2photo.unet import Norm, init_weights, norm_layer

__all__ = ["PatchConfig", "PatchDiscriminator", "build_patchgan", "receptive_field"]

_MAX_WIDTH = 8  # filters stop doubling at 8 * ndf


# ── config ───────────────────────────────────────────────────────────────────────────────────


class PatchConfig(BaseModel):
    """Architecture of :class:`PatchDiscriminator`."""

    model_config = ConfigDict(extra="forbid")

    in_channels: int = Field(6, ge=1, description="Channels of condition and image together (3 + 3).")
    ndf: int = Field(
        64, ge=1, description="Filters of the first layer; each further layer doubles it, up to 8x."
    )
    n_layers: int = Field(
        3, ge=1, le=6, description="Stride-2 layers: 3 gives 70x70 patches, 1 gives 16x16 (PixelGAN-like)."
    )
    norm: Norm = Field("batch", description="Normalisation after each inner convolution.")


# ── model ───────────────────────────────────────────────────────────────────────────────────


class PatchDiscriminator(Model):
    """``forward(condition, image)`` -> Nx1xhxw logits, one per patch (positive: "real")."""

    def __init__(self, config: PatchConfig) -> None:
        super().__init__(config)
        ndf, layers = config.ndf, config.n_layers
        widths = [ndf * min(2**index, _MAX_WIDTH) for index in range(layers + 1)]
        # Biases only where no batch norm follows (a norm's shift makes them redundant),
        # as in the reference, which gives its parameter count.
        bias = config.norm != "batch"
        stack: list[nn.Module] = [
            nn.Conv2d(config.in_channels, widths[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for index in range(1, layers + 1):
            # The last hidden layer keeps stride 1: more, smaller patches at the same depth.
            stride = 2 if index < layers else 1
            stack += [
                nn.Conv2d(widths[index - 1], widths[index], 4, stride=stride, padding=1, bias=bias),
                norm_layer(config.norm, widths[index]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        stack.append(nn.Conv2d(widths[layers], 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*stack)
        self.apply(init_weights)
        # Faster convolutions, as in the U-Net (the stubs lack this keyword of Module.to).
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(
        self, condition: torch.Tensor, image: torch.Tensor, *, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits; with ``with_features``, also the activation after each LeakyReLU, which
        pix2pixHD's feature-matching loss compares between a real pair and a generated one.
        A keyword of ``forward`` rather than a method of its own, so that it also passes through
        ``DistributedDataParallel``, which wraps the call alone."""
        activation = torch.cat([condition, image], dim=1).contiguous(memory_format=torch.channels_last)
        features = []
        for layer in self.layers:
            activation = layer(activation)
            if with_features and isinstance(layer, nn.LeakyReLU):
                features.append(activation)
        return (activation, features) if with_features else activation


def receptive_field(n_layers: int) -> int:
    """Side in pixels of the input window each output logit sees (70 for three layers)."""
    # Walk back from one output pixel: every 4x4 layer widens the window by 3 strides.
    strides = [2] * n_layers + [1, 1]
    size = 1
    for stride in reversed(strides):
        size = (size - 1) * stride + 4
    return size


# ── builder ──────────────────────────────────────────────────────────────────────────────────


def build_patchgan(
    *, ndf: int = 64, n_layers: int = 3, norm: Norm = "batch", in_channels: int = 6
) -> PatchDiscriminator:
    """A freshly initialised PatchGAN; the defaults are pix2pix's 70x70 discriminator."""
    return PatchDiscriminator(PatchConfig(ndf=ndf, n_layers=n_layers, norm=norm, in_channels=in_channels))
