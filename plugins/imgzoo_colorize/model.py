"""The colorization autoencoder of "Application of Autoencoders and GANs" (section 3), layer for layer.

Thirteen 3x3 convolutions with 'same' padding, ReLU after each but the last (tanh), and three
nearest-neighbour 2x upsamplings: L (1 channel) in, ab (2 channels) out at the input's size::

    input           1 x 256 x 256
    conv2d          64, stride 2     ->  64 x 128 x 128
    conv2d_1        128              -> 128 x 128 x 128
    conv2d_2        128, stride 2    -> 128 x  64 x  64
    conv2d_3        256              -> 256 x  64 x  64
    conv2d_4        256, stride 2    -> 256 x  32 x  32
    conv2d_5        512              -> 512 x  32 x  32
    conv2d_6        512              -> 512 x  32 x  32
    conv2d_7        256              -> 256 x  32 x  32
    conv2d_8        128              -> 128 x  32 x  32
    up_sampling2d   x2               -> 128 x  64 x  64
    conv2d_9        64               ->  64 x  64 x  64
    up_sampling2d_1 x2               ->  64 x 128 x 128
    conv2d_10       32               ->  32 x 128 x 128
    conv2d_11       16               ->  16 x 128 x 128
    conv2d_12       2, tanh          ->   2 x 128 x 128
    up_sampling2d_2 x2               ->   2 x 256 x 256

6,219,410 trainable parameters, 18.9 GFLOP per 256x256 image. Any input whose sides are
multiples of 8 works; the output has the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imgzoo import Model

__all__ = ["ColorizationAutoencoder", "KerasSameConv2d", "build_autoencoder"]

# (output channels, stride, 2x upsampling after the layer), in the order of the paper's summary.
_LAYERS: tuple[tuple[int, int, bool], ...] = (
    (64, 2, False),
    (128, 1, False),
    (128, 2, False),
    (256, 1, False),
    (256, 2, False),
    (512, 1, False),
    (512, 1, False),
    (256, 1, False),
    (128, 1, True),
    (64, 1, True),
    (32, 1, False),
    (16, 1, False),
    (2, 1, True),
)
DOWNSAMPLING = 8
"""Input sides must be multiples of this (three stride-2 layers, undone by three upsamplings)."""
DOMAIN_MODULES = 10
"""``layers[:10]`` ends with conv2d_4's ReLU, 256 channels at 1/8 of the input's size."""
BOTTLENECK_MODULES = 14
"""``layers[:14]`` ends with conv2d_6's ReLU: the bottleneck, 512 channels at 1/8 of the input's
size. The two together tell how familiar a picture is (see :mod:`imgzoo.domain`): on the tuning
pictures they told photos from minifigures better than either alone."""


class KerasSameConv2d(nn.Conv2d):
    """A 3x3 convolution with Keras' ``padding='same'``, stride 1 or 2.

    For stride 2 on an even side, Keras pads 0 before and 1 after (its total padding is 1, and the
    odd pixel goes at the end), so output pixel i sees input pixels 2i..2i+2. We pad exactly so,
    rather than PyTorch's symmetric ``padding=1`` (pixels 2i-1..2i+1, the same output shapes):
    then weights trained in Keras would give identical outputs here. The three pad copies cost
    about 1 % of a forward pass.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        padding = 1 if stride == 1 else 0  # stride 2 pads in forward()
        super().__init__(in_channels, out_channels, kernel_size=3, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return super().forward(x)


class ColorizationAutoencoder(Model):
    """L (Nx1xHxW, scaled to [-1, 1]) to ab (Nx2xHxW, Lab a and b divided by 128), H and W
    multiples of 8. ``layers`` follows the paper's Keras ``Sequential`` one module per layer.
    The architecture is fixed by the paper: there is nothing to configure."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for index, (out_channels, stride, upsample) in enumerate(_LAYERS):
            layers.append(KerasSameConv2d(channels, out_channels, stride=stride))
            layers.append(nn.Tanh() if index == len(_LAYERS) - 1 else nn.ReLU(inplace=True))
            if upsample:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()
        # oneDNN's CPU convolutions run 10-15 % faster on NHWC (and GPUs' tensor cores want it too).
        # Saved weights are unaffected: state_tensors() writes contiguous copies, and loading
        # copies into these parameters, keeping their layout. (torch's stubs lack memory_format.)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def reset_parameters(self) -> None:
        """Keras' default initialisation (Glorot-uniform kernels, zero biases), as the paper trained."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                assert module.bias is not None
                nn.init.zeros_(module.bias)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.chroma(self.encode(lightness)[0])

    def encode(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first half of :meth:`forward`: (the bottleneck, the features that tell how familiar
        the picture is: conv2d_4's and the bottleneck's channels, 768 at 1/8 of its size)."""
        height, width = lightness.shape[-2:]
        if height % DOWNSAMPLING or width % DOWNSAMPLING:
            raise ValueError(
                f"the colorization autoencoder needs sides that are multiples of {DOWNSAMPLING}, "
                f"got {width}x{height}: resize or pad the input first"
            )
        early: torch.Tensor = self.layers[:DOMAIN_MODULES](lightness)
        bottleneck: torch.Tensor = self.layers[DOMAIN_MODULES:BOTTLENECK_MODULES](early)
        return bottleneck, torch.cat([early, bottleneck], dim=1)

    def chroma(self, features: torch.Tensor) -> torch.Tensor:
        """The second half of :meth:`forward`: ab from the bottleneck features."""
        ab: torch.Tensor = self.layers[BOTTLENECK_MODULES:](features)
        return ab


def build_autoencoder() -> ColorizationAutoencoder:
    """The paper's autoencoder, freshly initialised."""
    return ColorizationAutoencoder()
