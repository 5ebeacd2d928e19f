"""Speed of ``edges2photo`` on CPU, one thread (pytest-benchmark; not part of the default run)::

    python -m pytest tests/benchmarks/test_edges2photo_bench.py -p no:cacheprovider --benchmark-enable

* the generator's forward at 256x256 against a plain PyTorch U-Net of the same config written
  the obvious way (below), which it must not be slower than;
* a warm ``imgzoo.run`` against the bare forward it wraps (at most 10 % more);
* training throughput, images per second, in fp32 and bf16 at 256 with ngf=32.

Untrained models: speed does not depend on the weights.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

import imgzoo
from imgzoo.runtime import autocast
from imgzoo.testing import ImmediateStepContext
from imgzoo_edges2photo.task import Edges2PhotoConfig, Edges2PhotoTask
from imgzoo_edges2photo.unet import UNetGenerator, build_unet

SIZE = 256
NGF = 32


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Figures for one core: comparable between runs on a shared machine, and what the
    training recipe is budgeted for."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


class PlainUNet(nn.Module):
    """The reference layout spelled out as nn.Sequential levels, in PyTorch's default (NCHW) layout."""

    def __init__(self, ngf: int = NGF, num_downs: int = 8) -> None:
        super().__init__()
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]
        self.downs = nn.ModuleList([nn.Sequential(nn.Conv2d(3, widths[0], 4, 2, 1, bias=False))])
        for i in range(1, num_downs):
            layers: list[nn.Module] = [
                nn.LeakyReLU(0.2),
                nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=False),
            ]
            if i < num_downs - 1:
                layers.append(nn.BatchNorm2d(widths[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for i in reversed(range(1, num_downs)):
            in_channels = widths[i] if i == num_downs - 1 else 2 * widths[i]
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(in_channels, widths[i - 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(widths[i - 1]),
            ]
            if i >= num_downs - 3:
                layers.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))
        self.ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], 3, 4, 2, 1), nn.Tanh()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = self.ups[0](skips.pop())
        for up in self.ups[1:]:
            x = up(torch.cat([x, skips.pop()], dim=1))
        return x


@pytest.fixture(scope="module")
def generator() -> UNetGenerator:
    return build_unet(ngf=NGF).eval()


@pytest.fixture(scope="module")
def edge_map() -> np.ndarray:
    """A 256x256 uint8 drawing: black outlines on white."""
    image = np.full((SIZE, SIZE), 255, np.uint8)
    image[64:192:16, 40:216] = 0
    image[40:216, 64:192:16] = 0
    return image


def _inputs() -> torch.Tensor:
    return torch.rand(1, 3, SIZE, SIZE) * 2 - 1


def _median_ms(function: Callable[[], object], *, repeats: int = 9) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _interleaved(first: Callable[[], object], second: Callable[[], object], *, rounds: int = 5) -> float:
    """Median time ratio first/second, measured in alternation so that load on a shared
    machine hits both alike."""
    ratios = [_median_ms(first, repeats=3) / _median_ms(second, repeats=3) for _ in range(rounds)]
    return statistics.median(ratios)


# --------------------------------------------------------------------------------------------
# Generator forward
# --------------------------------------------------------------------------------------------


@torch.inference_mode()
def test_generator_forward_256(benchmark, generator: UNetGenerator) -> None:  # type: ignore[no-untyped-def]
    x = _inputs()
    benchmark.pedantic(generator, args=(x,), rounds=10, warmup_rounds=1)


@torch.inference_mode()
def test_plain_unet_forward_256(benchmark) -> None:  # type: ignore[no-untyped-def]
    plain, x = PlainUNet().eval(), _inputs()
    benchmark.pedantic(plain, args=(x,), rounds=10, warmup_rounds=1)


@torch.inference_mode()
def test_generator_is_not_slower_than_a_plain_unet(generator: UNetGenerator) -> None:
    plain, x = PlainUNet().eval(), _inputs()
    assert sum(p.numel() for p in plain.parameters()) == generator.num_parameters()
    ratio = _interleaved(lambda: generator(x), lambda: plain(x))
    print(f"\ngenerator / plain U-Net forward time at {SIZE}x{SIZE}, ngf={NGF}: {ratio:.2f}")
    assert ratio <= 1.0


# --------------------------------------------------------------------------------------------
# imgzoo.run overhead
# --------------------------------------------------------------------------------------------


def test_warm_run(benchmark, edge_map: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    imgzoo.run("edges2photo", edge_map, weights=False)
    benchmark.pedantic(imgzoo.run, args=("edges2photo", edge_map), kwargs={"weights": False}, rounds=10)


def test_warm_run_costs_at_most_10_percent_over_the_bare_forward(edge_map: np.ndarray) -> None:
    pipeline = imgzoo.load("edges2photo", weights=False)  # the architecture run() caches and uses
    imgzoo.run("edges2photo", edge_map, weights=False)
    x = pipeline.task.preprocess(edge_map[..., None].astype(np.float32) / 255)

    def bare() -> None:  # what the pipeline runs: its inference models, at its precision
        with torch.inference_mode(), autocast(pipeline.device, pipeline.precision):
            pipeline.task.forward(pipeline.inference_models, x)

    ratio = _interleaved(lambda: imgzoo.run("edges2photo", edge_map, weights=False), bare)
    print(f"\nwarm imgzoo.run / bare forward at {SIZE}x{SIZE}: {ratio:.3f}")
    assert ratio <= 1.1


# --------------------------------------------------------------------------------------------
# Training throughput
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ndf", [32, 64])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_throughput(benchmark, precision: str, ndf: int) -> None:  # type: ignore[no-untyped-def]
    batch_size = 4
    task = Edges2PhotoTask(Edges2PhotoConfig(ngf=NGF, ndf=ndf, image_size=SIZE))
    models = task.build_models()
    for model in models.values():
        model.train()
    ctx = ImmediateStepContext(task.configure_optimizers(models))
    batch = (torch.rand(batch_size, 3, SIZE, SIZE) * 2 - 1, torch.rand(batch_size, 3, SIZE, SIZE) * 2 - 1)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            task.training_step(models, batch, ctx)

    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: the step ran once, untimed
        return
    images_per_second = batch_size / benchmark.stats.stats.median
    benchmark.extra_info["images_per_second"] = round(images_per_second, 2)
    setting = f"{precision}, ngf={NGF} ndf={ndf} batch={batch_size} at {SIZE}"
    print(f"\ntraining {setting}: {images_per_second:.2f} images/s")
