"""Convolutions whose weights are laid out for oneDNN once, instead of on every call.

On the CPU, PyTorch hands each 2-D convolution to oneDNN, which first copies the weight into
the blocked layout its kernels read (and under bf16 autocast casts it to bf16 before that). On
the deep layers of an image network at inference sizes, where the weights are large and the
pictures small, that repacking costs as much as the arithmetic. ONNX Runtime packs once, when
its session is made; :func:`prepack_convolutions` does the same for a torch module. Measured on
one core of an AVX-512 CPU, the shipped models' forwards: edges2photo at 256x256 about 1.1x
faster in fp32 and 2.3x in bf16; colorize's network at 128x128 1.3x in fp32 and 1.9x in bf16.

The packed call runs when oneDNN would have run anyway and its result is the same: a CPU
tensor in fp32 (or in bf16 under CPU autocast, on a CPU that oneDNN runs bf16 on), nothing
that needs a gradient, zero padding given as numbers, and no tracing, scripting, ONNX export or
``torch.compile`` (those see the usual call, which they know how to record). Everything else
takes the usual call, so a prepacked module still runs anywhere its original did.
"""

from __future__ import annotations

import copyreg
import functools
import weakref
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["is_prepacked", "prepack_convolutions"]


def prepack_convolutions(module: nn.Module) -> nn.Module:
    """Make every ``nn.Conv2d`` and ``nn.ConvTranspose2d`` in ``module`` pack its weights for
    oneDNN on its first eligible call and reuse them after; returns ``module``, changed in place.

    Meant for the inference copy a task's :meth:`~imgzoo.Task.prepare_inference` returns::

        def prepare_inference(self, models):
            return {"model": imgzoo.prepack_convolutions(copy.deepcopy(models["model"]))}

    Names, parameters and the state dict stay as they were; the packed copies of the weights
    live beside the module (one per precision used) and are made again if a weight changes.
    Subclasses keep their own ``forward``: a ``Conv2d`` subclass that pads before calling
    ``super().forward`` is packed too; one that replaces the convolution call is left alone.
    """
    for child in module.modules():
        packed_class = _packed_class(type(child))
        if packed_class is not None:
            child.__class__ = packed_class
    return module


def is_prepacked(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution that :func:`prepack_convolutions` made pack its weights."""
    return isinstance(module, _Packing)


class _Packed(NamedTuple):
    source: tuple[int, ...]  # the weight's and bias's _identity when packed
    weight: torch.Tensor  # in oneDNN's layout
    bias: torch.Tensor | None


# Packed weights per module and dtype. Kept outside the modules, so that copying, pickling and
# state dicts never meet oneDNN's opaque tensors; entries go with their module.
_PACKED: weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, _Packed]] = weakref.WeakKeyDictionary()


class _Packing(nn.Module):
    """What the packing classes share: copies and pickles are of the class before packing (the
    packed weights are a cache, and a class made at run time has no name to pickle by)."""

    _unpacked: type[nn.Module]

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        # The state as object's reduction gives it, rebuilt on a new instance of the old class.
        reduced = super().__reduce_ex__(protocol)  # type: ignore[arg-type]
        assert isinstance(reduced, tuple)
        rebuild = copyreg._reconstructor  # type: ignore[attr-defined]  # missing from the stubs
        return (rebuild, (self._unpacked, object, None), *reduced[2:])


class _PackedConv2d(_Packing, nn.Conv2d):
    _unpacked = nn.Conv2d

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        dtype = _packed_dtype(self, input, weight)
        if dtype is None or weight is not self.weight:
            return super()._conv_forward(input, weight, bias)
        packed = _packed(self, dtype, input.shape, transposed=False)
        geometry = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        output = torch.ops.mkldnn._convolution_pointwise(
            input.to(dtype), packed.weight, packed.bias, *geometry, "none", [], ""
        )
        return _in_usual_layout(output, input, weight)


class _PackedConvTranspose2d(_Packing, nn.ConvTranspose2d):
    _unpacked = nn.ConvTranspose2d

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        dtype = _packed_dtype(self, input, self.weight)
        if dtype is None or output_size is not None:
            return super().forward(input, output_size)
        packed = _packed(self, dtype, input.shape, transposed=True)
        geometry = (
            list(self.padding),
            list(self.output_padding),
            list(self.stride),
            list(self.dilation),
            self.groups,
        )
        output = torch.ops.mkldnn._convolution_transpose_pointwise(
            input.to(dtype), packed.weight, packed.bias, *geometry, "none", [], ""
        )
        return _in_usual_layout(output, input, self.weight)


def _packed_class(cls: type) -> type | None:
    """The packing subclass of ``cls``, or None where ``cls`` is no convolution this handles."""
    if cls not in _PACKED_CLASSES:
        _PACKED_CLASSES[cls] = _make_packed_class(cls)
    return _PACKED_CLASSES[cls]


_PACKED_CLASSES: dict[type, type | None] = {}


def _make_packed_class(cls: type) -> type | None:
    if not _ops_available():
        return None
    if issubclass(cls, nn.Conv2d) and cls._conv_forward is nn.Conv2d._conv_forward:
        base: type = _PackedConv2d
    elif issubclass(cls, nn.ConvTranspose2d) and cls.forward is nn.ConvTranspose2d.forward:
        base = _PackedConvTranspose2d
    else:
        return None
    if issubclass(cls, base):
        return cls
    if cls in (nn.Conv2d, nn.ConvTranspose2d):
        return base
    # A subclass (its own forward, say) keeps its methods; only the convolution call changes.
    return type(f"Packed{cls.__name__}", (base, cls), {"__module__": cls.__module__, "_unpacked": cls})


@functools.cache
def _ops_available() -> bool:
    mkldnn = getattr(torch.ops, "mkldnn", None)
    names = ("_convolution_pointwise", "_convolution_transpose_pointwise", "_reorder_convolution_weight",
             "_reorder_convolution_transpose_weight")  # fmt: skip
    try:
        return torch.backends.mkldnn.is_available() and all(hasattr(mkldnn, name) for name in names)
    except (AttributeError, RuntimeError):  # a build without the ops registered
        return False


@functools.cache
def _bf16_available() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and check())


def _packed_dtype(
    conv: nn.Conv2d | nn.ConvTranspose2d, input: torch.Tensor, weight: torch.Tensor
) -> torch.dtype | None:
    """The dtype the packed call computes in, or None where the usual call must run."""
    if input.device.type != "cpu" or weight.device.type != "cpu" or input.dim() != 4:
        return None
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or parametrize.is_parametrized(conv):
        return None
    if torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad):
        return None
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or _compiling():
        return None
    if _cpu_autocast_enabled():
        # Autocast would cast input, weight and bias to its dtype: the packed call does so too.
        dtype = _cpu_autocast_dtype()
        if dtype != torch.bfloat16 or not _bf16_available():
            return None
        return (
            dtype
            if input.dtype in (torch.float32, torch.bfloat16) and weight.dtype == torch.float32
            else None
        )
    if input.dtype == weight.dtype == torch.float32:
        return torch.float32
    return None


def _in_usual_layout(output: torch.Tensor, input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``output`` in the memory layout the usual call gives: channels-last where the input's or
    the weight's strides are, NCHW otherwise (code after a convolution may rely on it)."""
    if _strides_are_channels_last(input) or _strides_are_channels_last(weight):
        return output.contiguous(memory_format=torch.channels_last)
    # contiguous() keeps the strides of dimensions of size 1 as they were; the views give NCHW's.
    return output.contiguous().view(-1).view(output.shape)


def _strides_are_channels_last(tensor: torch.Tensor) -> bool:
    """Whether PyTorch takes ``tensor`` (4-D) for channels-last, as its convolutions decide: by
    the order of the strides, dimensions of size 1 counting as wherever they fit. (A tensor
    with one channel, or one pixel, passes both ``is_contiguous`` tests; this settles it the way
    PyTorch does.)"""
    sizes, strides = tensor.shape, tensor.stride()
    if strides[1] == 0:
        return False
    smallest = 0
    for dim in (1, 3, 2, 0):  # channels, width, height, batch: innermost first
        if sizes[dim] == 0 or strides[dim] < smallest:
            return False
        if dim == 0 and smallest == strides[1]:
            return False
        smallest = strides[dim] * (sizes[dim] if sizes[dim] > 1 else 1)
    return True


def _packed(
    conv: nn.Conv2d | nn.ConvTranspose2d, dtype: torch.dtype, input_size: torch.Size, *, transposed: bool
) -> _Packed:
    """``conv``'s weights in oneDNN's layout for ``dtype``, packed now if they were not, or have
    changed since. oneDNN picks the layout for the input size it is told; other sizes run with
    it as well (it repacks only where it must), so the first call's size is the one told."""
    weight, bias = conv.weight, conv.bias
    source = (*_identity(weight), *_identity(bias))
    cache = _PACKED.setdefault(conv, {})
    packed = cache.get(dtype)
    if packed is not None and packed.source == source:
        return packed
    with torch.no_grad():
        cast = weight.detach().to(dtype)
        if transposed:
            geometry = [conv.padding, conv.output_padding, conv.stride, conv.dilation]
            reorder = torch.ops.mkldnn._reorder_convolution_transpose_weight
        else:
            geometry = [conv.padding, conv.stride, conv.dilation]
            reorder = torch.ops.mkldnn._reorder_convolution_weight
        layout = reorder(cast, *map(list, geometry), conv.groups, list(input_size))
        packed = _Packed(source, layout, None if bias is None else bias.detach().to(dtype))
    cache[dtype] = packed
    return packed


def _identity(tensor: torch.Tensor | None) -> tuple[int, int]:
    """Where ``tensor``'s data lives and how often it was changed in place: a packed copy is
    stale once either differs. Inference tensors keep no count of changes (changing one in
    place needs inference mode, which inference code has no reason to do to its weights)."""
    if tensor is None:
        return 0, 0
    return tensor.data_ptr(), -1 if tensor.is_inference() else tensor._version


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch 2.3 and later
    return bool(is_compiling and is_compiling())


def _cpu_autocast_dtype() -> torch.dtype:
    if hasattr(torch, "get_autocast_dtype"):  # torch 2.4 and later
        return torch.get_autocast_dtype("cpu")
    return torch.get_autocast_cpu_dtype()


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch before 2.4 took no device type here
        return torch.is_autocast_cpu_enabled()
