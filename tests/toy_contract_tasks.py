"""Test-only tasks for the kinds of contract beyond same-size pictures: ``toy-inpaint`` takes a
``mask`` input, ``toy-depth`` returns a signed float map, ``toy-upscale`` doubles the size.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

import imgzoo
from imgzoo import InputSpec, Sample
from toy_tasks import PixelNet, PixelNetConfig, declare, to_tensor


class ToyConfig(imgzoo.TaskConfig):
    image_size: int = Field(16, ge=4, description="Training crop size.")
    learning_rate: float = Field(0.05, gt=0, description="Adam learning rate.")


def _blurred(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)


class FillNet(imgzoo.Model):
    """Fills masked pixels from a blurred picture: a 3x3 convolution over (image, blur, mask)."""

    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.fill = torch.nn.Conv2d(7, 3, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, mask = x[:, :3], x[:, 3:]
        guess = self.fill(torch.cat([image, _blurred(image), mask], dim=1))
        return image * (1 - mask) + guess * mask


class ToyInpaintTask(imgzoo.Task):
    name = "toy-inpaint"
    description = "Fills the masked pixels of a picture (test task)"
    Config = ToyConfig
    extra_inputs = (InputSpec("mask", "1 where pixels are to be filled in", channels=1, kind="mask"),)
    # A 3x3 convolution over seven channels overshoots at the 1x1 tasks' rate.
    test_overrides: ClassVar[Mapping[str, Any]] = {"learning_rate": 0.005}

    def build_models(self) -> dict[str, imgzoo.Model]:
        return {"model": FillNet(PixelNetConfig())}

    def preprocess(self, image: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
        assert mask is not None  # a required input: the pipeline refuses a call without it
        if not mask.any():  # what a task says about a picture reaches every front-end
            warnings.warn("toy-inpaint: the mask is empty, so nothing is filled in", stacklevel=2)
        holes = torch.from_numpy(mask).permute(2, 0, 1)
        return torch.cat([to_tensor(image), holes])[None]

    def postprocess(
        self, output: torch.Tensor, image: np.ndarray, mask: np.ndarray | None = None
    ) -> np.ndarray:
        return output.clamp(0, 1).permute(1, 2, 0).numpy()

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        holed, named = self.degrade(sample.image, sample.rng)
        return torch.cat([to_tensor(holed), torch.from_numpy(named["mask"]).permute(2, 0, 1)]), to_tensor(
            sample.image
        )

    def degrade(
        self, image: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The picture with random holes (30 % of its pixels), and the mask that says where."""
        mask = (rng.random((*image.shape[:2], 1)) < 0.3).astype(np.float32)
        return image * (1 - mask), {"mask": mask}

    def to_display(self, tensor: torch.Tensor) -> torch.Tensor:
        return super().to_display(tensor[:, :3])


class ToyDepthTask(imgzoo.Task):
    """A "depth" that is a signed, unbounded float map: 4 * (luma - 0.5), one channel."""

    name = "toy-depth"
    description = "A signed one-channel float map (test task)"
    Config = ToyConfig
    output_kind = "map"
    output_channels = 1
    primary_metric = ("l1", "min")

    def build_models(self) -> dict[str, imgzoo.Model]:
        return {"model": DepthNet(PixelNetConfig())}

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image)[None]

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        return output.permute(1, 2, 0).numpy()

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(sample.image)
        return x, 4 * (imgzoo.metrics.luma(x, channel_axis=-3) - 0.5)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
        return {"l1": imgzoo.metrics.l1(outputs, targets)}

    def to_display(self, tensor: torch.Tensor) -> torch.Tensor:
        shown = tensor if tensor.shape[1] == 3 else (tensor / 4 + 0.5)
        return super().to_display(shown)


class DepthNet(imgzoo.Model):
    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.depth = torch.nn.Conv2d(3, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depth(x)


class UpscaleNet(imgzoo.Model):
    """Nearest-neighbour 2x, then a 1x1 convolution to correct it."""

    Config = PixelNetConfig

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__(config)
        self.pixel = PixelNet(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel(F.interpolate(x, scale_factor=2, mode="nearest"))


class ToyUpscaleTask(imgzoo.Task):
    name = "toy-upscale"
    description = "2x super-resolution (test task)"
    Config = ToyConfig
    scale = 2

    def build_models(self) -> dict[str, imgzoo.Model]:
        return {"model": UpscaleNet(PixelNetConfig())}

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image)[None]

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        return output.clamp(0, 1).permute(1, 2, 0).numpy()

    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        target = to_tensor(sample.image)
        return F.avg_pool2d(target[None], 2)[0], target


class ContractTasksPlugin:
    """The plugin object the tests register, written with the public @hookimpl."""

    IMGZOO_PLUGIN_API = 3

    @imgzoo.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(declare(ToyInpaintTask))
        register(declare(ToyDepthTask))
        register(declare(ToyUpscaleTask))
