"""Images per second of each built-in task's ``training_step`` at 256x256, in fp32 and in bf16
autocast: the figures a training plan needs. colorize at batch 4; edges2photo (U-Net and
PatchGAN, ngf 32) at batch 4 with ndf 32 and 64. Untrained models: speed does not depend on the
weights. A report, not a test: the figures have no target (what bf16 buys over fp32 through the
Trainer is asserted by ``tests/benchmarks/test_training_bench.py``). From the repository root::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/training_throughput.py

Each figure is the best of a few steps after a warm-up step, torch on one thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from imgzoo.testing import ImmediateStepContext
from imgzoo_colorize.task import ColorizeConfig, ColorizeTask
from imgzoo_edges2photo.task import Edges2PhotoConfig, Edges2PhotoTask

SIZE = 256
BATCH = 4
STEPS = 3


def images_per_s(step: Callable[[], None]) -> float:
    step()  # warm-up: oneDNN picks its kernels
    best = float("inf")
    for _ in range(STEPS):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return BATCH / best


def training_step(
    task: ColorizeTask | Edges2PhotoTask, batch: tuple[torch.Tensor, torch.Tensor], bf16: bool
) -> Callable[[], None]:
    """One optimizer step of ``task`` on ``batch``, as the trainer's step would run it."""
    models = task.build_models()
    for model in models.values():
        model.train()
    context = ImmediateStepContext(task.configure_optimizers(models))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            task.training_step(models, batch, context)

    return step


def main() -> None:
    torch.manual_seed(0)
    colorize_batch = (torch.rand(BATCH, 1, SIZE, SIZE) * 2 - 1, torch.rand(BATCH, 3, SIZE, SIZE) * 0.4 - 0.2)
    photos = (torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1, torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1)
    cases = {
        "colorize": lambda: (ColorizeTask(ColorizeConfig()), colorize_batch),
        "edges2photo ngf=32 ndf=32": lambda: (
            Edges2PhotoTask(Edges2PhotoConfig(ngf=32, ndf=32, image_size=SIZE)),
            photos,
        ),
        "edges2photo ngf=32 ndf=64": lambda: (
            Edges2PhotoTask(Edges2PhotoConfig(ngf=32, ndf=64, image_size=SIZE)),
            photos,
        ),
    }
    print(f"training_step at {SIZE}x{SIZE}, batch {BATCH}, torch on {torch.get_num_threads()} thread(s):")
    for name, make in cases.items():
        rates = []
        for bf16 in (False, True):
            task, batch = make()
            rates.append(images_per_s(training_step(task, batch, bf16)))
        print(f"  {name:<26} fp32 {rates[0]:5.2f} images/s, bf16 {rates[1]:5.2f} images/s")


if __name__ == "__main__":
    main()
