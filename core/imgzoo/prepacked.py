"""Convolutions whose weights are laid out for oneDNN once, instead of on every call.

On the CPU, PyTorch hands each 2-D convolution to oneDNN, which first copies the weight into
the blocked layout its kernels read (and under bf16 autocast casts it to bf16 before that). On
the deep layers of an image network at inference sizes, where the weights are large and the
pictures small, that repacking costs as much as the arithmetic. ONNX Runtime packs once, when
its session is made; :func:`prepack_convolutions` does the same for a torch module. Measured on
one core of an AVX-512 CPU with the shipped weights (tests/benchmarks/test_prepacked_bench.py):
edges2photo's generator at 256x256 1.2x faster in fp32 and 1.8-2.3x in bf16 (at 1024x1024,
0.9-1.1x and 1.1-1.2x: there the arithmetic dwarfs the packing); colorize's network at 128x128
1.0-1.1x and 1.4x.

The packed call runs for a CPU tensor in fp32 (or in bf16 under CPU autocast, on a CPU that
oneDNN runs bf16 on), with oneDNN enabled, nothing that needs a gradient, zero padding given as
numbers, and no tracing, ONNX export, ``torch.compile`` or ``torch.export`` under way (those
record the usual call, which they know). Its results are the usual call's to float rounding (in
bf16 with an activation taken along, one rounding step apart, as the activation is applied
before the result is rounded to bf16). Everything else takes the usual call, so a prepacked
module runs wherever its original did; ``torch.jit.script`` and ``torch.fx`` do not take it:
give them the original.
"""

from __future__ import annotations

import copyreg
import functools
import weakref
from collections.abc import Callable
from typing import NamedTuple, SupportsIndex, cast

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

__all__ = ["is_prepacked", "prepack_convolutions"]


def prepack_convolutions(module: nn.Module) -> nn.Module:
    """Make every ``nn.Conv2d`` and ``nn.ConvTranspose2d`` in ``module`` pack its weights for
    oneDNN on its first eligible call and reuse them after; returns ``module``, changed in place.

    Meant for the inference copy a task's :meth:`~imgzoo.Task.prepare_inference` returns::

        def prepare_inference(self, models):
            return {"model": imgzoo.prepack_convolutions(copy.deepcopy(models["model"]))}

    Names, parameters and the state dict stay as they were; the packed copies of the weights
    live beside the module (one per precision used) and are made again when a weight is
    replaced or changed in place as PyTorch counts it (``load_state_dict``, ``copy_`` under
    ``no_grad``). A change PyTorch does not count, through ``.data`` or to an inference tensor
    inside ``torch.inference_mode()``, goes unseen: call this again after one, which drops the
    packed copies. Subclasses keep their own ``forward``: a ``Conv2d`` subclass that pads before
    calling ``super().forward`` is packed too; one that replaces the convolution call is not.

    Each ``nn.Sequential`` changes class too: an activation right after a plain convolution
    (``ReLU``, ``LeakyReLU``, ``Tanh`` or ``Sigmoid``) is then applied by oneDNN as the
    convolution writes its output, instead of in a second pass over it. Forward hooks on either
    module, or global ones, turn that off.
    """
    for child in module.modules():
        _PACKED.pop(child, None)
        packed_class = _packed_class(type(child))
        if packed_class is not None:
            child.__class__ = packed_class
    return module


def is_prepacked(module: nn.Module) -> bool:
    """Whether :func:`prepack_convolutions` has changed ``module`` (a convolution or a sequence)."""
    return isinstance(module, _Packing)


class _Packed(NamedTuple):
    source: tuple[int, ...]  # the weight's and bias's _identity when packed
    # The weight and bias themselves, weakly: an id names one tensor only while that one lives.
    tensors: tuple[weakref.ref[torch.Tensor], ...]
    weight: torch.Tensor  # in oneDNN's layout
    bias: torch.Tensor | None
    run: Callable[..., torch.Tensor]  # oneDNN's convolution op
    geometry: tuple[object, ...]  # its shape arguments, worked out once


class _PostOp(NamedTuple):
    """An activation as oneDNN applies it to a convolution's output: its name there, its scalars."""

    name: str
    scalars: list[float]


_NO_POST_OP = _PostOp("none", [])


def _post_op(activation: nn.Module) -> _PostOp | None:
    kind = type(activation)
    if kind is nn.LeakyReLU:
        return _PostOp("leaky_relu", [cast(nn.LeakyReLU, activation).negative_slope])
    names = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
    return _PostOp(names[kind], []) if kind in names else None


# Packed weights per module and dtype. Kept outside the modules, so that copying, pickling and
# state dicts never meet oneDNN's opaque tensors; entries go with their module.
_PACKED: weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, _Packed]] = weakref.WeakKeyDictionary()


class _Packing(nn.Module):
    """What the packing classes share: copies and pickles are of the class before packing (the
    packed weights are a cache, and a class made at run time has no name to pickle by)."""

    _unpacked: type[nn.Module]

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[object, ...]:
        # The state as object's reduction gives it, rebuilt on a new instance of the old class.
        reduced = super().__reduce_ex__(protocol)
        assert isinstance(reduced, tuple)
        rebuild = copyreg._reconstructor  # type: ignore[attr-defined]  # missing from the stubs
        return (rebuild, (self._unpacked, object, None), *reduced[2:])


class _PackedConvolution(_Packing):
    """The packed call, shared by the two kinds of convolution."""

    weight: torch.Tensor
    transposed: bool

    def packed_call(self, input: torch.Tensor, post_op: _PostOp = _NO_POST_OP) -> torch.Tensor | None:
        """This convolution of ``input``, then ``post_op``, by oneDNN with the packed weights; or
        None where the usual call must run (see the module's docstring)."""
        conv = cast(_ConvNd, self)
        dtype = _packed_dtype(conv, input)
        if dtype is None:
            return None
        packed = _packed(conv, dtype, input.shape)
        output = packed.run(input.to(dtype), packed.weight, packed.bias, *packed.geometry, *post_op, "")
        return _in_usual_layout(output, input, self.weight)


class _PackedConv2d(_PackedConvolution, nn.Conv2d):
    _unpacked = nn.Conv2d

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        passed_own = weight is self.weight and bias is self.bias
        output = self.packed_call(input) if passed_own else None
        return super()._conv_forward(input, weight, bias) if output is None else output


class _PackedConvTranspose2d(_PackedConvolution, nn.ConvTranspose2d):
    _unpacked = nn.ConvTranspose2d

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        output = self.packed_call(input) if output_size is None else None
        return super().forward(input, output_size) if output is None else output


class _FusingSequential(_Packing, nn.Sequential):
    """An ``nn.Sequential`` that hands each activation following a plain packed convolution to
    oneDNN with it, as one call."""

    _unpacked = nn.Sequential

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        layers = list(self._modules.values())
        index = 0
        while index < len(layers):
            layer, following = layers[index], layers[index + 1 : index + 2]
            post_op = _post_op(following[0]) if following and _fusable(layer, following[0]) else None
            output = cast(_PackedConvolution, layer).packed_call(input, post_op) if post_op else None
            if output is None:  # no activation to take along, or the usual call must run
                input, index = layer(input), index + 1
            else:
                input, index = output, index + 2
        return input


def _fusable(layer: nn.Module, activation: nn.Module) -> bool:
    """Whether ``layer`` is a convolution whose packed call may stand for it and ``activation``:
    a plain one (a subclass's own forward would be skipped), neither with hooks to call."""
    plain = type(layer) in (_PackedConv2d, _PackedConvTranspose2d)
    return plain and not (_has_hooks(layer) or _has_hooks(activation))


def _has_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` would run hooks: its own, or those every module runs."""
    everyone = nn.modules.module
    shared = getattr(everyone, "_global_forward_hooks", None) or getattr(
        everyone, "_global_forward_pre_hooks", None
    )
    return bool(module._forward_hooks or module._forward_pre_hooks or shared)


def _packed_class(cls: type) -> type | None:
    """The packing subclass of ``cls``, or None where ``cls`` is no module this handles."""
    if cls not in _PACKED_CLASSES:
        _PACKED_CLASSES[cls] = _make_packed_class(cls)
    return _PACKED_CLASSES[cls]


_PACKED_CLASSES: dict[type, type | None] = {}


def _make_packed_class(cls: type) -> type | None:
    if not _ops_available():
        return None
    if cls is nn.Sequential:
        return _FusingSequential
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


def _packed_dtype(conv: _ConvNd, input: torch.Tensor) -> torch.dtype | None:
    """The dtype the packed call computes in, or None where the usual call must run."""
    weight, bias = conv.weight, conv.bias
    if not (input.is_cpu and weight.is_cpu) or input.dim() != 4 or not torch.backends.mkldnn.enabled:
        return None
    # (A parametrization is a submodule of that name; the public test for it is far slower.)
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or "parametrizations" in conv._modules:
        return None
    # oneDNN has no transposed convolution whose output padding reaches the stride (dilation
    # allows it); PyTorch computes those with its own kernel.
    if conv.transposed and any(
        extra >= step for extra, step in zip(conv.output_padding, conv.stride, strict=True)
    ):
        return None
    needs_grad = input.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    if torch.is_grad_enabled() and needs_grad:
        return None
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or _compiling():
        return None
    if not _cpu_autocast_enabled():
        return torch.float32 if input.dtype == weight.dtype == torch.float32 else None
    # Autocast would cast input, weight and bias to its dtype: the packed call does so too.
    dtype = _cpu_autocast_dtype()
    usable = dtype == torch.bfloat16 and _bf16_available() and weight.dtype == torch.float32
    return dtype if usable and input.dtype in (torch.float32, torch.bfloat16) else None


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


def _packed(conv: _ConvNd, dtype: torch.dtype, input_size: torch.Size) -> _Packed:
    """``conv``'s weights in oneDNN's layout for ``dtype``, packed now if they were not, or have
    changed since. oneDNN picks the layout for the input size it is told; other sizes run with
    it as well (it repacks only where it must), so the first call's size is the one told."""
    weight, bias = conv.weight, conv.bias
    source = (*_identity(weight), *_identity(bias))
    cache = _PACKED.setdefault(conv, {})
    packed = cache.get(dtype)
    if packed is not None and packed.source == source and all(ref() is not None for ref in packed.tensors):
        return packed
    mkldnn = torch.ops.mkldnn
    if conv.transposed:
        reorder, run = mkldnn._reorder_convolution_transpose_weight, mkldnn._convolution_transpose_pointwise
    else:
        reorder, run = mkldnn._reorder_convolution_weight, mkldnn._convolution_pointwise
    geometry = (*_geometry(conv), conv.groups)
    with torch.no_grad():
        layout = reorder(weight.detach().to(dtype), *geometry, list(input_size))
        tensors = tuple(weakref.ref(tensor) for tensor in (weight, bias) if tensor is not None)
        packed = _Packed(
            source, tensors, layout, None if bias is None else bias.detach().to(dtype), run, geometry
        )
    cache[dtype] = packed
    return packed


def _geometry(conv: _ConvNd) -> list[list[int]]:
    """The shape arguments oneDNN's convolution ops take, in their order."""
    padding = list(cast(tuple[int, ...], conv.padding))  # not a name: _packed_dtype made sure
    if conv.transposed:
        return [padding, list(conv.output_padding), list(conv.stride), list(conv.dilation)]
    return [padding, list(conv.stride), list(conv.dilation)]


def _identity(tensor: torch.Tensor | None) -> tuple[int, ...]:
    """Which tensor this is, where its data lives and how often it was changed in place: a
    packed copy is stale once any differs. (Inference tensors keep no count of changes: see
    prepack_convolutions.)"""
    if tensor is None:
        return ()
    return id(tensor), tensor.data_ptr(), -1 if tensor.is_inference() else tensor._version


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
