"""Tasks that exist only in the tests: they prove the core end to end without knowing any
built-in task. ``invert`` has one model; ``toygan`` has two models and two optimizers, so
GAN-style training is exercised before any real GAN plugin exists. ``smooth`` and ``upscale``
are fully convolutional with a known receptive field, and declare tiling.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

import imgzoo
from imgzoo.data.base import Sample
from imgzoo.model import Model
from imgzoo.tiling import Tiling


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC float image -> CxHxW tensor with 3 channels."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)


class PixelNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: int = Field(3, description="Colour channels in and out.")


class PixelNet(Model):
    """One 1x1 convolution: enough to learn ``1 - x``."""

    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.mix = torch.nn.Conv2d(config.channels, config.channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x)


class InvertConfig(imgzoo.TaskConfig):
    image_size: int = Field(16, ge=4, description="Training crop size.")
    learning_rate: float = Field(0.05, gt=0, description="Adam learning rate.")
    gain: float = Field(1.0, gt=0, le=100, description="Multiplies the output (a field for config tests).")


class InvertTask(imgzoo.Task):
    name = "invert"
    description = "Photographic negative (test task)"
    Config = InvertConfig
    request_options = ("gain",)

    def build_models(self) -> dict[str, Model]:
        return {"model": PixelNet(PixelNetConfig())}

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image)[None]

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return models["model"](inputs) * self.config.gain

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        return output.clamp(0, 1).permute(1, 2, 0).numpy()

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(sample.image)
        return x, 1 - x

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return 1 - image


class ToyGanConfig(imgzoo.TaskConfig):
    image_size: int = Field(16, ge=4, description="Training crop size.")
    learning_rate: float = Field(0.01, gt=0, description="Adam learning rate of both models.")
    adversarial_weight: float = Field(0.1, ge=0, description="Weight of the generator's GAN loss.")


class Critic(Model):
    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.score = torch.nn.Conv2d(2 * config.channels, 1, kernel_size=3, padding=1)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.score(torch.cat([condition, image], dim=1))


class ToyGanTask(InvertTask):
    """Invert, trained like a conditional GAN: a critic step, then a generator step."""

    name = "toygan"
    description = "Two models, two optimizers (test task)"
    Config = ToyGanConfig
    request_options = ()
    inference_model_name = "generator"

    def build_models(self) -> dict[str, Model]:
        return {"generator": PixelNet(PixelNetConfig()), "critic": Critic(PixelNetConfig())}

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        return models["generator"](inputs)

    def configure_optimizers(self, models: Mapping[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.learning_rate
        return {name: torch.optim.Adam(models[name].parameters(), lr=lr) for name in ("generator", "critic")}

    def training_step(self, models, batch, ctx):  # type: ignore[no-untyped-def]
        inputs, targets = batch
        generator, critic = models["generator"], models["critic"]
        fake = generator(inputs)
        real_score, fake_score = critic(inputs, targets), critic(inputs, fake.detach())
        critic_loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        ctx.optimize("critic", critic_loss)
        adversarial = F.softplus(-critic(inputs, fake)).mean()
        generator_loss = F.l1_loss(fake, targets) + self.config.adversarial_weight * adversarial
        return {"critic": critic_loss.detach(), "generator": ctx.optimize("generator", generator_loss)}


class SmoothNet(Model):
    """3x3 convolution, a stride-2 detour (average pool, nearest upsampling), 3x3 convolution:
    each output pixel sees at most 3 input pixels away, on a grid of stride 2."""

    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.first = torch.nn.Conv2d(config.channels, 4, kernel_size=3, padding=1)
        self.second = torch.nn.Conv2d(4, config.channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.first(x))
        coarse = F.interpolate(F.avg_pool2d(features, 2), scale_factor=2.0, mode="nearest")
        return torch.sigmoid(self.second(features + coarse))


class SmoothTask(InvertTask):
    """A fully convolutional task that may be tiled; gray in, gray out."""

    name = "smooth"
    description = "Fully convolutional, tiled above 32 px (test task)"
    tiling = Tiling(tile=32, overlap=8, halo=4, multiple=2)

    def build_models(self) -> dict[str, Model]:
        return {"model": SmoothNet(PixelNetConfig())}

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        height, width = image.shape[:2]
        return F.pad(to_tensor(image)[None], (0, width % 2, 0, height % 2))  # the stride needs even sides

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        pixels = output[:, : image.shape[0], : image.shape[1]].permute(1, 2, 0).numpy()
        return pixels.mean(axis=2, keepdims=True) if image.shape[2] == 1 else pixels


class UpscaleTask(InvertTask):
    """Twice the size: 3x3 convolution, nearest upsampling, 3x3 convolution (2 input pixels' reach)."""

    name = "upscale"
    description = "2x upscaling, tiled above 32 px (test task)"
    scale = 2
    tiling = Tiling(tile=32, overlap=8, halo=3)

    def build_models(self) -> dict[str, Model]:
        return {"model": UpscaleNet(PixelNetConfig())}


class UpscaleNet(SmoothNet):
    """SmoothNet's two convolutions with a nearest 2x upsampling between them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.interpolate(torch.relu(self.first(x)), scale_factor=2.0, mode="nearest")
        return torch.sigmoid(self.second(features))


MADE_IN_TESTS = SimpleNamespace()
"""Task classes that tests make inside functions, where ``"module:Class"`` cannot reach them:
:func:`declare` keeps them here, and their declarations point here."""


def declare(task_class: type[imgzoo.Task]) -> imgzoo.TaskDeclaration:
    """The declaration of a task class a test wrote, everything read from the class. Its
    ``task_class`` names the class's module, or :data:`MADE_IN_TESTS` for a class made in a
    function (``type(...)`` or a ``class`` statement there)."""
    module, path = task_class.__module__, task_class.__qualname__
    if getattr(sys.modules.get(module), path, None) is not task_class:
        key = f"{task_class.__name__}_{len(vars(MADE_IN_TESTS))}"
        setattr(MADE_IN_TESTS, key, task_class)
        module, path = __name__, f"MADE_IN_TESTS.{key}"
    return imgzoo.TaskDeclaration(
        name=task_class.name,
        description=task_class.description,
        task_class=f"{module}:{path}",
        config=task_class.Config,
        scale=task_class.scale,
        output_kind=task_class.output_kind,
        extra_inputs=tuple(task_class.extra_inputs),
    )


class DeclaringPlugin:
    """A plugin that declares the given task classes (see :func:`declare`), and targets plugin
    API ``api`` if given."""

    def __init__(self, *task_classes: type[imgzoo.Task], api: object = None) -> None:
        self.task_classes = task_classes
        if api is not None:
            self.IMGZOO_PLUGIN_API = api

    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        for task_class in self.task_classes:
            register(declare(task_class))


class ToyTasksPlugin:
    """The plugin object the tests register, written with the public @hookimpl."""

    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(declare(InvertTask))
        register(declare(ToyGanTask))


class TiledToyTasksPlugin:
    """Registers ``smooth`` and ``upscale``, the tasks that declare tiling."""

    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(declare(SmoothTask))
        register(declare(UpscaleTask))


def write_invert_weights(path, *, gain: float = 1.0) -> str:  # type: ignore[no-untyped-def]
    """Write exact ``1 - x`` weights for ``invert`` (as training would) and return the sha256."""
    from imgzoo.weights import save_weights, state_tensors

    task = InvertTask(InvertConfig(gain=gain))
    model = task.build_models()["model"]
    with torch.no_grad():
        model.mix.weight.copy_(-torch.eye(3).view(3, 3, 1, 1))
        model.mix.bias.fill_(1.0)
    metadata = {"task": "invert", "config": task.config.model_dump(mode="json"), "recipe": {"exact": True}}
    return save_weights(path, state_tensors(model, prefix="model"), metadata=metadata)


def write_registry(path, task: str, entries: dict[str, tuple[str, str]], default: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """A user registry file naming weights ``{name: (file or url, sha256)}``."""
    lines = [f"[tasks.{task}]"]
    if default:
        lines.append(f'default_weights = "{default}"')
    for name, (source, sha256) in entries.items():
        key = "url" if source.startswith("http") else "file"
        lines += [
            "",
            f"[tasks.{task}.weights.{name}]",
            f'{key} = "{source}"',
            f'sha256 = "{sha256}"',
            'license = "MIT"',
        ]
    path.write_text("\n".join(lines) + "\n")
