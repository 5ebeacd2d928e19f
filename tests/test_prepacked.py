"""imgzoo.prepack_convolutions: oneDNN's weight layout made once, the same results as the usual call."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import profile

import imgzoo
from imgzoo.prepacked import _PACKED, _bf16_available, _ops_available

PACKED_OPS = {"mkldnn::_convolution_pointwise", "mkldnn::_convolution_transpose_pointwise"}
packing = pytest.mark.skipif(not _ops_available(), reason="this torch build has no oneDNN convolution ops")


class PadThenConvolve(nn.Conv2d):
    """A subclass with its own forward that still calls the convolution it inherits (like
    colorize's Keras-style stride-2 convolution)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 1, 0, 1)))


class OwnConvolution(nn.Conv2d):
    """A subclass that replaces the convolution call itself: not packed."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, weight.flip(-1), bias, self.stride, self.padding)


def network() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.LeakyReLU(0.2),
        PadThenConvolve(8, 16, 3, stride=2),
        nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False),
        nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1),
    ).eval()


def ops_run(module: nn.Module, x: torch.Tensor) -> set[str]:
    with profile() as run:
        module(x)
    return {event.key for event in run.key_averages()}


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(1, 3, 12, 16), (2, 3, 7, 10), (1, 3, 2, 2)])
@pytest.mark.parametrize("bf16", [False, True])
def test_results_and_layouts_are_the_usual_ones(
    layout: torch.memory_format, shape: tuple[int, ...], bf16: bool
) -> None:
    usual = network()
    packed = imgzoo.prepack_convolutions(copy.deepcopy(usual))
    x = torch.randn(shape).contiguous(memory_format=layout)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(2):  # the first call packs, the second reuses
            expected, got = usual(x), packed(x)
            assert got.dtype == expected.dtype == (torch.bfloat16 if bf16 else torch.float32)
            assert got.shape == expected.shape
            # In bf16 an activation applied as the convolution writes (see the next test) rounds
            # once where the usual call rounds twice: a bf16 step (2^-8 of the value) apart.
            tolerance = {"atol": 2e-3, "rtol": 2e-2} if bf16 else {"atol": 1e-5, "rtol": 1e-5}
            torch.testing.assert_close(got, expected, **tolerance)
            # The layout too: code after a convolution may rely on it (.view, say).
            for memory_format in (torch.contiguous_format, torch.channels_last):
                assert got.is_contiguous(memory_format=memory_format) == expected.is_contiguous(
                    memory_format=memory_format
                )


@packing
@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        pytest.param(
            torch.bfloat16,
            marks=pytest.mark.skipif(not _bf16_available(), reason="oneDNN runs no bf16 on this CPU"),
        ),
    ],
)
def test_the_packed_call_runs_and_packs_once(dtype: torch.dtype) -> None:
    packed = imgzoo.prepack_convolutions(network())
    convolutions = [module for module in packed if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))]
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        ran = ops_run(packed, x)
        assert ran >= PACKED_OPS and "aten::mkldnn_convolution" not in ran
        # Every convolution, the subclass that pads first included, packed on the first call...
        first = [_PACKED[conv][dtype].weight for conv in convolutions]
        assert len(first) == 5 and all(weight.dtype == dtype for weight in first)
        packed(x)
    # ... and not again.
    assert all(
        _PACKED[conv][dtype].weight is weight for conv, weight in zip(convolutions, first, strict=True)
    )


ACTIVATIONS = {
    "relu": (nn.ReLU(inplace=True), "aten::relu_"),
    "leaky_relu": (nn.LeakyReLU(0.1), "aten::leaky_relu"),
    "tanh": (nn.Tanh(), "aten::tanh"),
    "sigmoid": (nn.Sigmoid(), "aten::sigmoid"),
}


@packing
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("transposed", [False, True])
def test_an_activation_after_a_convolution_runs_in_the_same_call(activation: str, transposed: bool) -> None:
    module, op = ACTIVATIONS[activation]
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1) if transposed else nn.Conv2d(4, 6, 3, padding=1)
    usual = nn.Sequential(conv, copy.deepcopy(module), nn.Conv2d(6, 2, 1)).eval()
    packed = imgzoo.prepack_convolutions(copy.deepcopy(usual))
    x = torch.randn(2, 4, 9, 7)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), usual(x), atol=1e-5, rtol=1e-5)
        assert op in ops_run(usual, x)
        assert op not in ops_run(packed, x)
        # A hook, on either module or on every module, must see it run: the pair is then
        # called as usual.
        seen: list[type] = []
        hook = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(type(m)))
        try:
            assert op in ops_run(packed, x) and type(module) in seen
        finally:
            hook.remove()
        seen.clear()
        packed[1].register_forward_hook(lambda m, i, o: seen.append(type(m)))
        assert op in ops_run(packed, x) and seen == [type(module)]
        torch.testing.assert_close(packed(x), usual(x), atol=1e-5, rtol=1e-5)


@packing
def test_a_changed_weight_is_packed_again() -> None:
    usual = network()
    packed = imgzoo.prepack_convolutions(copy.deepcopy(usual))
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        packed(x)
    with torch.no_grad():  # in place, as load_state_dict does
        for model in (usual, packed):
            model[0].weight.mul_(-2)
            model[3].bias.add_(1)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), usual(x), atol=1e-5, rtol=1e-5)
    for model in (usual, packed):
        model.load_state_dict(network().state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), usual(x), atol=1e-5, rtol=1e-5)
    # A new Parameter, even one that takes the old one's memory.
    for model in (usual, packed):
        model[0].weight = nn.Parameter(torch.ones_like(model[0].weight))
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), usual(x), atol=1e-5, rtol=1e-5)
    # Changes PyTorch does not count go unseen until the module is packed again, as documented.
    for model in (usual, packed):
        model[0].weight.data.mul_(3)
    imgzoo.prepack_convolutions(packed)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), usual(x), atol=1e-5, rtol=1e-5)


@packing
def test_what_the_packed_call_cannot_do_takes_the_usual_one() -> None:
    x = torch.randn(1, 3, 16, 16)
    unpackable = {
        "reflect padding": nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        "padding by name": nn.Conv2d(3, 4, 3, padding="same"),
        "its own convolution call": OwnConvolution(3, 4, 3, padding=1),
    }
    for why, conv in unpackable.items():
        usual = copy.deepcopy(conv.eval())
        packed = imgzoo.prepack_convolutions(conv.eval())
        with torch.inference_mode():
            ran = ops_run(packed, x)
            torch.testing.assert_close(packed(x), usual(x))
        assert not PACKED_OPS & ran, why

    # An output padding as large as the stride, which oneDNN has no kernel for.
    wide = nn.ConvTranspose2d(3, 4, 3, stride=1, dilation=2, output_padding=1).eval()
    with torch.inference_mode():
        expected = wide(x)
        torch.testing.assert_close(imgzoo.prepack_convolutions(wide)(x), expected)

    # A bias passed in place of the module's own.
    class WithoutBias(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self._conv_forward(x, self.weight, None)

    conv = WithoutBias(3, 4, 3).eval()
    with torch.inference_mode():
        expected = F.conv2d(x, conv.weight)
        torch.testing.assert_close(imgzoo.prepack_convolutions(conv)(x), expected)

    packed = imgzoo.prepack_convolutions(network())
    # oneDNN switched off.
    with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
        assert not PACKED_OPS & ops_run(packed, x)
    # Gradients, for the input or for the biases alone: the packed ops have none.
    inputs = x.clone().requires_grad_()
    packed(inputs).sum().backward()
    assert inputs.grad is not None and packed[0].weight.grad is not None
    packed.zero_grad(set_to_none=True)
    for name, parameter in packed.named_parameters():
        parameter.requires_grad_(name.endswith("bias"))
    packed(x).sum().backward()
    assert packed[0].bias.grad is not None and packed[0].weight.grad is None
    # Tracing records the usual call, which export knows.
    with torch.inference_mode():
        traced = torch.jit.trace(packed, x)
        torch.testing.assert_close(traced(x), network()(x), atol=1e-5, rtol=1e-5)
    assert "mkldnn::_convolution_pointwise" not in str(traced.inlined_graph)


def test_names_state_dict_and_copies_are_as_before() -> None:
    usual = network()
    packed = imgzoo.prepack_convolutions(copy.deepcopy(usual))
    assert [name for name, _ in packed.named_modules()] == [name for name, _ in usual.named_modules()]
    assert packed.state_dict().keys() == usual.state_dict().keys()
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        expected = usual(x)
        packed(x)
        # A copy, or a pickle, is of the class before packing: a class made at run time has no
        # name to unpickle by. Both are built from the reduction, whose class is checked first.
        for protocol in range(2, 6):
            assert [module.__reduce_ex__(protocol)[1][0] for module in packed] == [type(m) for m in usual]
        clone = copy.deepcopy(packed)
        assert [type(m) for m in clone] == [type(m) for m in usual]
        torch.testing.assert_close(clone(x), expected)
