"""Two processes train as one: GAN tasks with gradient accumulation, their gradients averaged by
DistributedDataParallel (one wrapper per trained model), match a single process given the same
global batch. Each test launches ``torchrun`` with two CPU processes (gloo)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import imgzoo
from imgzoo.images import save_image
from imgzoo.training import Callback, Trainer, train
from imgzoo.weights import load_weights
from test_training import run_two_processes
from toy_tasks import Critic, PixelNet, PixelNetConfig, ToyGanTask, declare

REPO = Path(__file__).resolve().parent.parent


class CriticWithSpare(Critic):
    """A critic with a layer its forward never uses: DDP must not wait for its gradient."""

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.spare = torch.nn.Conv2d(1, 1, kernel_size=1)


class FrozenCriticGanTask(ToyGanTask):
    """toygan in pix2pix's order: the generator's step first, through a critic frozen with
    ``requires_grad_(False)``, then the critic's step."""

    name = "toygan-frozen"
    description = "Generator first, through a frozen critic (test task)"

    def build_models(self) -> dict[str, imgzoo.Model]:
        return {"generator": PixelNet(PixelNetConfig()), "critic": CriticWithSpare(PixelNetConfig())}

    def training_step(self, models, batch, ctx):  # type: ignore[no-untyped-def]
        inputs, targets = batch
        generator, critic = models["generator"], models["critic"]
        fake = generator(inputs)
        critic.requires_grad_(False)
        try:
            adversarial = F.softplus(-critic(inputs, fake)).mean()
        finally:
            critic.requires_grad_(True)
        generator_loss = F.l1_loss(fake, targets) + self.config.adversarial_weight * adversarial
        losses = {"generator": ctx.optimize("generator", generator_loss)}
        real_score, fake_score = critic(inputs, targets), critic(inputs, fake.detach())
        losses["critic"] = ctx.optimize(
            "critic", F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        )
        return losses


class FrozenCriticPlugin:
    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(declare(FrozenCriticGanTask))


class WrappersSeen(Callback):
    """Writes, per process, the type of each model the task's step is given."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer: Trainer) -> None:
        seen = {name: type(model).__name__ for name, model in trainer.step_context.models.items()}
        Path(f"{self.path}-{trainer.group.rank}.json").write_text(json.dumps(seen))


SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import imgzoo
from toy_tasks import ToyTasksPlugin
from test_training_distributed import FrozenCriticPlugin, WrappersSeen
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
imgzoo.register_plugin(FrozenCriticPlugin(), name="toy-frozen")
from imgzoo.training import train
train({task!r}, {data!r}, out={out!r}, callbacks=[WrappersSeen({seen!r})], **{options!r})
"""


@pytest.fixture
def gan_tasks(toy_tasks: None) -> Iterator[None]:
    name = imgzoo.register_plugin(FrozenCriticPlugin(), name="toy-frozen")
    yield
    imgzoo.unregister_plugin(name)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    """10 random 20x20 pictures: 9 to train on, 2 batches of 4 per epoch."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for index in range(10):
        save_image(folder / f"{index:02d}.png", rng.random((20, 20, 3)).astype(np.float32))
    return str(folder)


@pytest.mark.slow
@pytest.mark.usefixtures("gan_tasks")
@pytest.mark.parametrize("task", ["toygan", "toygan-frozen"])
def test_two_processes_accumulating_gan_gradients_match_one(task: str, images: str, tmp_path: Path) -> None:
    # Global batch 4: 2 micro-batches of 2 in one process, of 1 in each of two.
    options: dict[str, Any] = {
        "steps": 3,
        "batch_size": 4,
        "grad_accum": 2,
        "device": "cpu",
        "num_workers": 0,
        "progress": False,
        "eval_every": 10,
        "precision": "fp32",  # equal up to the order of sums, which bf16's rounding would blur
    }
    single = train(task, images, out=tmp_path / "single", **options)
    script = tmp_path / "ddp.py"
    seen = str(tmp_path / "wrappers")
    paths = [str(REPO / "core"), str(REPO / "plugins"), str(REPO / "tests")]
    out = tmp_path / "ddp"
    script.write_text(
        SCRIPT.format(paths=paths, task=task, data=images, out=str(out), seen=seen, options=options)
    )
    completed = run_two_processes(script)
    assert completed.returncode == 0, completed.stderr[-3000:]

    for rank in (0, 1):
        wrappers = json.loads(Path(f"{seen}-{rank}.json").read_text())
        assert wrappers == {"generator": "DistributedDataParallel", "critic": "DistributedDataParallel"}
    assert single.weights is not None
    expected, actual = load_weights(single.weights)[0], load_weights(out / f"{task}.safetensors")[0]
    # Saved from the models themselves: no "module." in the names.
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.allclose(expected[name], actual[name], rtol=1e-5, atol=1e-6), name
    if task == "toygan-frozen":
        initial = FrozenCriticGanTask(FrozenCriticGanTask.Config()).build_models()["critic"]
        assert not torch.equal(actual["critic.score.weight"], initial.score.weight.detach())
