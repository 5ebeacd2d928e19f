"""The pix2pix generator: a U-Net (Isola et al. 2017, "Image-to-Image Translation with
Conditional Adversarial Networks", section 3.2.1 and appendix 6.1.1).

``num_downs`` levels, each halving the size with a 4x4 stride-2 convolution on the way down
and doubling it with a 4x4 stride-2 transposed convolution on the way up; every level's
decoder also reads the encoder's output of the same size (the skip connection), so the fine
detail of the input reaches the output without passing the bottleneck. For 256x256 and
``num_downs=8`` the bottleneck is 1x1 and the channels for ``ngf=64`` are::

    encoder  C64-C128-C256-C512-C512-C512-C512-C512        (LeakyReLU 0.2, no norm on the first and last)
    decoder  CD512-CD512-CD512-C512-C256-C128-C64-C3       (ReLU, D = dropout 0.5, tanh out)

which is the reference implementation's layout, with the same parameters (54,413,955 for
``ngf=64`` with batch norm) when ``upsample="transposed"``. ``upsample="resize"`` doubles the
size by nearest-neighbour resizing and then applies a 3x3 convolution instead (Odena et al.
2016, "Deconvolution and Checkerboard Artifacts"): a 4x4 stride-2 transposed convolution
gives every other output pixel a different mix of weights, which shows as a 2x2 checkerboard
the training must learn away; after a resize every output pixel sees the same kernel, so the
pattern cannot arise. One difference: the paper puts dropout in the first three decoder
layers, the bottleneck's included, and so does this module; the authors' code put it one level
further out. Inputs must have sides divisible by ``2**num_downs``; the task pads to that.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from typing import Literal, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from imgzoo import ArgumentError, Model, prepack_convolutions

__all__ = [
    "DROPOUT_LEVELS",
    "FusedUNet",
    "Norm",
    "UNetConfig",
    "UNetGenerator",
    "Upsample",
    "build_unet",
    "init_weights",
    "norm_layer",
]

Norm = Literal["batch", "instance", "none"]
Upsample = Literal["transposed", "resize"]

DROPOUT_LEVELS = 3
"""How many of the innermost decoder levels apply dropout (the paper's three)."""
DOMAIN_LEVEL = 3
"""The encoder level whose features tell how familiar a drawing is: 8 ``ngf`` channels at 1/16
of its size (16x16 for 256 px), fine enough for their spatial spread to mean something."""

_MAX_WIDTH = 8  # channels stop doubling at 8 * ngf, as in the paper (512 for ngf=64)


# ── config ───────────────────────────────────────────────────────────────────────────────────


class UNetConfig(BaseModel):
    """Architecture of :class:`UNetGenerator`."""

    model_config = ConfigDict(extra="forbid")

    in_channels: int = Field(3, ge=1, description="Channels of the input image.")
    out_channels: int = Field(3, ge=1, description="Channels of the output image.")
    ngf: int = Field(
        64, ge=1, description="Filters of the outermost level; deeper levels double it, up to 8x."
    )
    num_downs: int = Field(
        8, ge=2, le=12, description="Levels: the bottleneck is 2**num_downs times smaller than the input."
    )
    norm: Norm = Field("batch", description="Normalisation after each inner convolution.")
    dropout: float = Field(
        0.5, ge=0, lt=1, description=f"Dropout probability in the {DROPOUT_LEVELS} innermost decoder levels."
    )
    upsample: Upsample = Field(
        "transposed",
        description="How the decoder doubles the size: 'transposed' (4x4 stride-2 transposed "
        "convolution, pix2pix) or 'resize' (nearest x2, then a 3x3 convolution: no checkerboard).",
    )


# ── model ───────────────────────────────────────────────────────────────────────────────────


class UNetGenerator(Model):
    """U-Net image-to-image generator; ``forward(x)`` maps Nx``in_channels``xHxW in [-1, 1] to
    Nx``out_channels``xHxW in [-1, 1].

    ``forward(x, sample=True)`` applies dropout even in eval mode: pix2pix's only source of
    randomness, for varied outputs at inference. It is a call argument rather than a switched
    module mode so that concurrent inference calls never change the model.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__(config)
        widths = [config.ngf * min(2**level, _MAX_WIDTH) for level in range(config.num_downs)]
        innermost = config.num_downs - 1
        # As in the reference, batch norm means no convolution biases at all, even on the two
        # encoder convolutions no norm follows; that gives the published parameter counts.
        bias = config.norm != "batch"
        self.encoder = nn.ModuleList(
            _Down(
                config.in_channels if level == 0 else widths[level - 1],
                widths[level],
                norm=config.norm if 0 < level < innermost else "none",
                activate=level > 0,
                bias=bias,
            )
            for level in range(config.num_downs)
        )
        # decoder[0] is the innermost level; each but that one reads its input concatenated
        # with the encoder output of the same size, hence twice the channels.
        self.decoder = nn.ModuleList(
            _Up(
                widths[level] * (1 if level == innermost else 2),
                widths[level - 1] if level > 0 else config.out_channels,
                norm=config.norm if level > 0 else "none",
                dropout=config.dropout if innermost - level < DROPOUT_LEVELS and level > 0 else 0.0,
                outermost=level == 0,
                bias=bias or level == 0,
                upsample=config.upsample,
            )
            for level in reversed(range(config.num_downs))
        )
        self.apply(init_weights)
        # NHWC: oneDNN's CPU convolutions run faster on it than on NCHW (about 5 % for inference
        # and 10 % for training here), and tensor-core GPUs prefer it too. Loading weights and
        # .to(device) keep the layout.
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this."""
        return int(2 ** len(self.encoder))

    def forward(
        self, x: torch.Tensor, sample: bool = False, *, with_domain_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The photo; with ``with_domain_features``, also :meth:`domain_features`, taken from
        the encoder on the way instead of computed again."""
        x, skips = _encode(self.encoder, x)
        features = F.leaky_relu(_domain_level(x, skips), 0.2) if with_domain_features else None
        x = self.decoder[0](x, sample)
        for up in self.decoder[1:]:
            x = up(torch.cat([x, skips.pop()], dim=1), sample)
        return x if features is None else (x, features)

    def domain_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output at ``DOMAIN_LEVEL``, after the LeakyReLU the next level starts
        with: what :class:`FusedUNet` computes there, so that statistics fitted with either hold
        for both (see :mod:`imgzoo.domain`)."""
        x = x.contiguous(memory_format=torch.channels_last)
        for down in self.encoder[: DOMAIN_LEVEL + 1]:
            x = down(x)
        return F.leaky_relu(x, 0.2)

    def fused_for_inference(self) -> FusedUNet:
        """A copy for inference that computes this model's eval-mode outputs faster; this
        model is left as it is (see :class:`FusedUNet`)."""
        return FusedUNet(self)


class FusedUNet(nn.Module):
    """The inference form of an eval-mode :class:`UNetGenerator`: same outputs (to float
    rounding), ``forward(x, sample=False)`` as there, never trained.

    * Batch norm, an affine map once its statistics are frozen, is folded into the weights and
      bias of the convolution before it: one pass over each feature map less.
    * No skip concatenation: a (transposed) convolution of ``cat([x, skip])`` is the sum of one
      over ``x`` and one over ``skip``, each with its half of the weights. The sum accumulates in
      place, where the concatenation copied both halves (channel-interleaved in NHWC) first.
    * With ``upsample="resize"``, no resize: a 3x3 convolution of a nearest-neighbour x2
      enlargement is a 4x4 stride-2 transposed convolution of the picture before it, with tied
      taps (:func:`_as_transposed`). Each output pixel then takes 4 instead of 9 multiply-adds
      per input channel, and the enlarged input (four times the pixels) is never made.
    * NHWC throughout, which oneDNN runs fastest here in fp32 and bf16 alike (the benchmark in
      tests/benchmarks/test_edges2photo_bench.py measures both layouts).
    * On the CPU, weights packed for oneDNN once (:func:`imgzoo.prepack_convolutions`), not
      on every call: on the innermost levels repacking took longer than the arithmetic. Each
      encoder level ends with the activation the next one starts with, which oneDNN then
      applies as the convolution writes its output (:func:`_activations_last`).
    """

    def __init__(self, generator: UNetGenerator) -> None:
        super().__init__()
        if generator.training:
            raise ArgumentError(
                "edges2photo: only an eval-mode generator can be fused (batch norm must use its running "
                "statistics); call .eval() on it first",
                argument="generator",
            )
        source = copy.deepcopy(generator)
        self.encoder = _activations_last(
            _fold_sequential(cast(nn.Sequential, level)) for level in source.encoder
        )
        ups = [cast(_Up, up) for up in source.decoder]
        innermost = ups[0]
        self.bottleneck_up = _upward(innermost)
        self.bottleneck_norm = _left_after_folding(innermost.norm)
        self.from_below = nn.ModuleList()
        self.from_skip = nn.ModuleList()
        self.norms = nn.ModuleList()
        for up in ups[1:]:
            below, skip = _split_by_input(_upward(up), up.conv.in_channels // 2)
            self.from_below.append(below)
            self.from_skip.append(skip)
            self.norms.append(_left_after_folding(up.norm))
        self.dropouts: list[float] = [up.dropout for up in ups]
        prepack_convolutions(self)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
        self.eval().requires_grad_(False)

    def forward(
        self, x: torch.Tensor, sample: bool = False, *, with_domain_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`UNetGenerator.forward`."""
        x, skips = _encode(self.encoder, x)
        # A copy: the decoder below applies its ReLU to the skips in place.
        features = _domain_level(x, skips).clone() if with_domain_features else None
        # The encoder's last level ends with the ReLU the decoder starts with.
        x = self._dropout(self.bottleneck_norm(self.bottleneck_up(x)), 0, sample)
        levels = zip(self.from_below, self.from_skip, self.norms, strict=True)
        for level, (below, from_skip, norm) in enumerate(levels, start=1):
            # The skip holds the encoder output after LeakyReLU (see _activations_last), and
            # ReLU of that is ReLU of the output. In place: the encoder has finished with it.
            skip = F.relu(skips.pop(), inplace=True)
            x = below(F.relu(x, inplace=True)).add_(from_skip(skip))
            x = self._dropout(norm(x), level, sample)
        return torch.tanh(x) if features is None else (torch.tanh(x), features)

    def domain_features(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`UNetGenerator.domain_features`; here the level ends with that LeakyReLU."""
        x = x.contiguous(memory_format=torch.channels_last)
        for down in self.encoder[: DOMAIN_LEVEL + 1]:
            x = down(x)
        return x

    def _dropout(self, x: torch.Tensor, level: int, sample: bool) -> torch.Tensor:
        rate = self.dropouts[level]
        return F.dropout(x, rate, training=True) if sample and rate > 0 else x


def _domain_level(bottleneck: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """The encoder's output at ``DOMAIN_LEVEL`` (the bottleneck's, for a shallower U-Net), as
    :meth:`UNetGenerator.domain_features` computes it on its own."""
    return skips[DOMAIN_LEVEL] if len(skips) > DOMAIN_LEVEL else bottleneck


def _encode(encoder: nn.ModuleList, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The encoder's bottleneck output, and the outputs of the levels above it for the skips."""
    x = x.contiguous(memory_format=torch.channels_last)
    skips = []
    for down in encoder:
        x = down(x)
        skips.append(x)
    skips.pop()  # the bottleneck feeds the decoder directly, not through a skip
    return x, skips


def _fold(conv: nn.Module, norm: nn.Module, *, transpose: bool = False) -> nn.Module:
    """``conv`` with the batch norm after it folded in; as it is when ``norm`` is another kind."""
    if isinstance(norm, nn.BatchNorm2d):
        assert isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
        return fuse_conv_bn_eval(conv, norm, transpose=transpose)
    return conv


def _left_after_folding(norm: nn.Module) -> nn.Module:
    """What still runs after the convolution once batch norm is folded: instance norm, nothing else."""
    return nn.Identity() if isinstance(norm, nn.BatchNorm2d) else norm


def _fold_sequential(level: nn.Sequential) -> nn.Sequential:
    """An encoder level (activation, convolution, norm) with its norm folded into the convolution."""
    layers = list(level)
    if len(layers) >= 2 and isinstance(layers[-1], nn.BatchNorm2d):
        layers[-2:] = [_fold(layers[-2], layers[-1])]
    return nn.Sequential(*layers)


def _activations_last(levels: Iterable[nn.Sequential]) -> nn.ModuleList:
    """The encoder levels with each one's leading activation moved to the end of the level
    before it, and ReLU, the decoder's first step, at the end of the last: an activation then
    follows its convolution directly (batch norm folded), which oneDNN applies in the same call
    (:func:`imgzoo.prepack_convolutions`). The outputs become LeakyReLU of what they were, the
    innermost's ReLU of it."""
    layers = [list(level) for level in levels]
    for above, below in itertools.pairwise(layers):
        assert isinstance(below[0], nn.LeakyReLU)
        above.append(below.pop(0))
    layers[-1].append(nn.ReLU())
    return nn.ModuleList(nn.Sequential(*level) for level in layers)


def _split_by_input(conv: nn.Module, channels: int) -> tuple[nn.Module, nn.Module]:
    """Two (transposed) convolutions whose outputs sum to ``conv``'s on ``cat([a, b])``, where
    ``a`` has ``channels`` channels: the first takes ``conv``'s bias, the second has none."""
    assert isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
    transposed = isinstance(conv, nn.ConvTranspose2d)
    # Input channels are the weight's first axis in a transposed convolution, its second otherwise.
    weight = conv.weight.detach()
    axis = 0 if transposed else 1
    parts = weight.split([channels, weight.shape[axis] - channels], dim=axis)
    halves = []
    for part, bias in zip(parts, (conv.bias, None), strict=True):
        half = copy.deepcopy(conv)
        half.in_channels = part.shape[axis]
        half.weight = nn.Parameter(part.clone())
        half.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        halves.append(half)
    return halves[0], halves[1]


def _upward(up: _Up) -> nn.Module:
    """A decoder level's convolution as the fused generator runs it: batch norm folded in, and a
    resize convolution turned into the transposed convolution it equals."""
    folded = _fold(up.conv, up.norm, transpose=not up.resize)
    return _as_transposed(cast(nn.Conv2d, folded)) if up.resize else folded


def _as_transposed(conv: nn.Conv2d) -> nn.ConvTranspose2d:
    """The 4x4 stride-2 transposed convolution (padding 1) that computes ``conv`` (3x3, padding 1)
    of the nearest-neighbour x2 enlargement of its input.

    Along each axis, even output ``2m`` of the enlarged picture reads enlarged pixels
    ``2m - 1, 2m, 2m + 1``, which are input pixels ``m - 1, m, m``; odd output ``2m + 1`` reads
    ``m, m, m + 1``. Where two taps read one pixel their weights add, so with taps
    ``(w0, w1, w2)`` the even output is ``w0 x[m-1] + (w1 + w2) x[m]`` and the odd one
    ``(w0 + w1) x[m] + w2 x[m+1]``. A transposed convolution with kernel 4, stride 2 and padding
    1 gives output ``2m`` as ``k[1] x[m] + k[3] x[m-1]`` and ``2m + 1`` as
    ``k[2] x[m] + k[0] x[m+1]``: so ``k = (w2, w1 + w2, w0 + w1, w0)``, on both axes.
    """
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)

    def tied(weight: torch.Tensor, dim: int) -> torch.Tensor:
        w0, w1, w2 = weight.unbind(dim)
        return torch.stack((w2, w1 + w2, w0 + w1, w0), dim)

    kernel = tied(tied(conv.weight.detach(), 2), 3)  # out x in x 4 x 4
    transposed = nn.ConvTranspose2d(
        conv.in_channels, conv.out_channels, 4, stride=2, padding=1, bias=conv.bias is not None
    )
    # A transposed convolution's weight is in x out x kH x kW.
    transposed.weight = nn.Parameter(kernel.transpose(0, 1).contiguous())
    if conv.bias is not None:
        transposed.bias = nn.Parameter(conv.bias.detach().clone())
    return transposed


def _nearest_double(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class _Down(nn.Sequential):
    """(LeakyReLU 0.2) -> 4x4 stride-2 convolution -> (norm): one encoder level, half the size."""

    def __init__(
        self, in_channels: int, out_channels: int, *, norm: Norm, activate: bool, bias: bool
    ) -> None:
        layers: list[nn.Module] = []
        if activate:
            # Not in place: its input is also a skip connection, which must keep its value.
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias))
        if norm != "none":
            layers.append(norm_layer(norm, out_channels))
        super().__init__(*layers)


class _Up(nn.Module):
    """ReLU -> 4x4 stride-2 transposed convolution (or nearest x2 resize -> 3x3 convolution) ->
    norm -> dropout: one decoder level, twice the size. The outermost level ends with tanh
    instead of norm and dropout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm: Norm,
        dropout: float,
        outermost: bool,
        bias: bool,
        upsample: Upsample = "transposed",
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.resize = upsample == "resize"
        self.conv: nn.Conv2d | nn.ConvTranspose2d = (
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)
            if self.resize
            else nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
        )
        self.norm = norm_layer(norm, out_channels) if not outermost and norm != "none" else nn.Identity()
        self.outermost = outermost

    def forward(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        # In place is safe here: the concatenation (or the bottleneck output) is used only here.
        x = F.relu(x, inplace=True)
        if self.resize:
            x = _nearest_double(x)
        x = self.norm(self.conv(x))
        if self.outermost:
            return torch.tanh(x)
        if self.dropout > 0:
            x = F.dropout(x, self.dropout, training=self.training or sample)
        return x

    def extra_repr(self) -> str:
        notes = ["resize x2"] if self.resize else []
        return ", ".join(notes + ([f"dropout={self.dropout}"] if self.dropout else []))


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """The normalisation layer of the given kind; instance norm without learned affine, as in pix2pix."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def init_weights(module: nn.Module) -> None:
    """pix2pix's initialisation: convolutions N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# ── builder ──────────────────────────────────────────────────────────────────────────────────


def build_unet(
    *,
    ngf: int = 64,
    num_downs: int = 8,
    norm: Norm = "batch",
    dropout: float = 0.5,
    in_channels: int = 3,
    out_channels: int = 3,
    upsample: Upsample = "transposed",
) -> UNetGenerator:
    """A freshly initialised U-Net; the defaults are pix2pix's 256x256 generator."""
    config = UNetConfig(
        ngf=ngf,
        num_downs=num_downs,
        norm=norm,
        dropout=dropout,
        in_channels=in_channels,
        out_channels=out_channels,
        upsample=upsample,
    )
    return UNetGenerator(config)
