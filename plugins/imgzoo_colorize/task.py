"""The ``colorize`` task: gray to colour with the paper's autoencoder, predicting Lab chroma from lightness.

    inference   image ─▶ its L at the working size ─▶ autoencoder ─▶ ab ─▶ resized bilinearly to the
                image's size and joined with the image's *own* full-resolution L ─▶ RGB
    training    RGB crop ─▶ Lab ─▶ (L, Lab) ─▶ MSE on ab (or the class-rebalanced MSE)

So the result has the input's size, aspect ratio, luminance and every detail: the network only
chooses colours. Gray and colour inputs both work (a colour input gives its L).

Model-space tensors: inputs are L mapped to [-1, 1] (1 channel). Targets, and the outputs of
:meth:`ColorizeTask.predict_for_metrics`, are the whole Lab image (3 channels: that L, then a and b divided by
128), so :meth:`ColorizeTask.to_display` can render each of them on its own; the network itself
writes only the 2 ab channels.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import cv2
import numpy as np
import torch

from imgzoo import Sample, StepContext, Task, TaskConfig, prepack_convolutions
from imgzoo.domain import domain_fade
from imgzoo.metrics import colorfulness, psnr, ssim
from imgzoo_colorize.color import (
    AB_BIN_SIZE,
    AB_BIN_START,
    AB_BINS,
    AB_SCALE,
    as_rgb,
    chroma_models,
    colorize,
    decode_lightness,
    encode_lightness,
    gray_of,
    gray_picture,
    lab_to_rgb,
    lightness,
    rebalance_weights,
    rgb_to_lab,
    working_size,
)
from imgzoo_colorize.config import ColorizeConfig
from imgzoo_colorize.model import ColorizationAutoencoder, build_autoencoder
from imgzoo_colorize.standalone import StandaloneColorize

__all__ = ["ColorizeTask", "flip_agreement"]


class ColorizeTask(Task):
    """Colorization with the paper's 6.2M-parameter convolutional autoencoder (see ``model.py``)."""

    name = "colorize"
    Config = ColorizeConfig
    config: ColorizeConfig
    # A small working size for imgzoo.testing's contract checks; and a lower learning rate, because
    # RMSprop's first step moves every weight by about 3x the rate whatever its gradient (its
    # running square starts at 0), which overshoots on one tiny batch at the paper's 1e-3.
    test_overrides: ClassVar[Mapping[str, Any]] = {"image_size": 32, "learning_rate": 1e-4}
    # 8-bit pictures are colorized in 8-bit Lab, without a float copy of the whole picture.
    takes_stored_pixels = True
    # The network is fixed (no config field shapes it): its peak per working-size pixel, as
    # Pipeline.bytes_per_pixel measures it, declared so that no probe runs at a large image_size.
    bytes_per_pixel = 600
    # How the chroma reaches full resolution and how the mirrored prediction tempers it: the
    # working size (image_size) and the network stay as served.
    request_options = (
        "chroma_upsampling",
        "guide_radius",
        "guide_eps",
        "chroma_confidence",
        "confidence_tolerance",
    )

    def __init__(self, config: TaskConfig | None = None) -> None:
        super().__init__(config)
        self.statistics = ColourStatistics()

    # ── models ────────────────────────────────────────────────────────────────────────────
    def build_models(self) -> dict[str, torch.nn.Module]:
        return {"model": build_autoencoder()}

    # ── inference ─────────────────────────────────────────────────────────────────────────
    def prepare_inference(self, models: Mapping[str, torch.nn.Module]) -> Mapping[str, torch.nn.Module]:
        # A copy whose weights are packed for oneDNN once instead of at every call: in bf16 the
        # network's forward runs about 1.4x faster (the cast to bf16 was repeated at every call too).
        model = models[self.inference_model_name]
        return {**models, self.inference_model_name: prepack_convolutions(copy.deepcopy(model))}

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        return working_size(height, width, self.config.image_size)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """The image's L at the working size (long side ``image_size``), as a 1x1xhxw tensor."""
        height, width = image.shape[:2]
        size = working_size(height, width, self.config.image_size)
        if size != (height, width):
            # Resizing RGB before converting to Lab matches training, where crops are resized RGB;
            # and it makes the conversion cost nothing for a large image.
            shrinking = size[0] <= height and size[1] <= width
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            image = cv2.resize(image, size[::-1], interpolation=interpolation)
        if image.dtype != np.float32:  # the integers of an 8/16-bit input, now small
            image = image.astype(np.float32) * np.float32(1 / np.iinfo(image.dtype).max)
        return torch.from_numpy(encode_lightness(lightness(image)))[None, None]

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        """Inference: the whole Lab image at the working size, float32: the input's L (which
        :meth:`postprocess` guides the chroma's upsampling with), then the predicted ab, scaled by
        the prediction's confidence (see ``chroma_confidence``) and faded out for a picture unlike
        the training data (see :meth:`domain_fade`); a fourth channel holds that picture's domain
        score everywhere (0 without domain statistics), for :meth:`postprocess` to report."""
        model = cast(ColorizationAutoencoder, models[self.inference_model_name])
        count = inputs.shape[0]
        mirrored_too = self.config.chroma_confidence
        bottleneck, features = model.encode(torch.cat([inputs, inputs.flip(-1)]) if mirrored_too else inputs)
        both = model.chroma(bottleneck).float()
        ab = both[:count]
        if mirrored_too:
            mirrored = both[count:].flip(-1)
            ab = (ab + mirrored) * (flip_agreement(ab, mirrored, self.config.confidence_tolerance) / 2)
        score, fade = self.domain_fade(features[:count])
        score_plane = score.view(-1, 1, 1, 1).expand(-1, 1, *inputs.shape[2:])
        return torch.cat([inputs.float(), ab * fade.view(-1, 1, 1, 1), score_plane], dim=1)

    def domain_features(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        """conv2d_4's and the bottleneck's channels (see ``ColorizationAutoencoder.encode``)."""
        return cast(ColorizationAutoencoder, models[self.inference_model_name]).encode(inputs)[1]

    def domain_fade(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N domain scores, N factors in [0, 1] for the chroma) of N pictures' :meth:`domain_features`:
        :meth:`imgzoo.domain.DomainStatistics.fade` with the weights' statistics, pure torch (it
        exports into an ONNX graph); scores 0 and factors 1 when the weights have none."""
        if self.domain_statistics is None:
            unknown = features.new_zeros(features.shape[0], dtype=torch.float32)
            return unknown, unknown + 1
        return self.domain_statistics.fade(features)

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        """Predicted ab, brought to the image's size (guided by its L, see ``chroma_upsampling``)
        and joined with the image's own L, as RGB: uint8 for a uint8 image, else float32. Warns
        when the chroma was faded for a picture unlike the training data; faded out entirely,
        the result is the gray picture itself."""
        config = self.config
        # A channels-last output (the model's layout) transposes to a contiguous HxWx3 view.
        lab = output.detach().float().cpu().numpy().transpose(1, 2, 0)
        self._warn_if_faded(float(lab[0, 0, 3]))
        ab = lab[..., 1:3] * np.float32(AB_SCALE)
        if not ab.any():
            return gray_picture(image)
        guide = None
        if config.chroma_upsampling == "guided":
            guide = (lab[..., 0] + np.float32(1)) * np.float32(0.5)  # encoded L to L / 100
        models = chroma_models(ab, guide, radius=config.guide_radius, eps=config.guide_eps)
        return colorize(image, models)

    def standalone_module(self, models: Mapping[str, torch.nn.Module]) -> torch.nn.Module:
        """All of the above in one module, uint8 picture in and uint8 RGB out (see ``standalone.py``)."""
        return StandaloneColorize(self, models)

    def _warn_if_faded(self, score: float) -> None:
        statistics = self.domain_statistics
        if statistics is None or score <= float(statistics.fade_start):
            return
        kept = float(domain_fade(torch.tensor(score), statistics.fade_start, statistics.fade_end))
        how_much = "" if kept == 0 else f" to {kept:.0%} of the prediction"
        warnings.warn(
            f"colorize: this picture looks unlike its training data (score {score:.2f}; its training "
            f"pictures score up to {float(statistics.fade_start):.2f}); colours faded{how_much}",
            stacklevel=3,
        )

    # ── training ──────────────────────────────────────────────────────────────────────────
    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """(L 1xHxW, Lab 3xHxW) in model space. A paired sample's target is the colour image."""
        colour = sample.target if sample.target is not None else sample.image
        lab = rgb_to_lab(as_rgb(colour)).transpose(2, 0, 1)
        encoded = np.empty(lab.shape, dtype=np.float32)
        encoded[0] = encode_lightness(lab[0])
        np.multiply(lab[1:], np.float32(1 / AB_SCALE), out=encoded[1:])
        target = torch.from_numpy(encoded)
        return target[:1].clone(), target

    def configure_optimizers(self, models: Mapping[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """RMSprop with Keras' defaults, as the paper trained: rho 0.9, epsilon 1e-7 added outside the
        square root (TF 2's Keras RMSprop without momentum; the same update as torch's)."""
        params = models[self.inference_model_name].parameters()
        optimizer = torch.optim.RMSprop(params, lr=self.config.learning_rate, alpha=0.9, eps=1e-7)
        return {self.inference_model_name: optimizer}

    def training_step(
        self,
        models: Mapping[str, torch.nn.Module],
        batch: tuple[torch.Tensor, torch.Tensor],
        ctx: StepContext,
    ) -> dict[str, torch.Tensor]:
        # Before the loss: the rebalanced weights then already know this batch's colours.
        self.statistics.update(_ab_of(batch[1]))
        return super().training_step(models, batch, ctx)

    def state_dict(self) -> dict[str, Any]:
        """The colour statistics of the targets seen so far: resuming must not forget them."""
        return self.statistics.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.statistics.load_state_dict(state)

    def loss(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error on ab (targets may be Lab or ab alone), weighted per pixel if rebalanced."""
        target_ab = _ab_of(targets).float()
        squared = (models[self.inference_model_name](inputs).float() - target_ab) ** 2
        if self.config.loss == "mse":
            return squared.mean()
        return (squared * self.pixel_weights(target_ab)[:, None]).mean()

    def pixel_weights(self, target_ab: torch.Tensor) -> torch.Tensor:
        """Nx2xHxW target ab (model space) to NxHxW rebalancing weights: rare colours weigh more.

        The colour prior is the histogram of every training target seen so far (of this batch
        alone before the first training step).
        """
        counts = self.statistics.counts if self.statistics.pixels else _histogram(target_ab).numpy()
        table = rebalance_weights(counts, mix=self.config.rebalance_mix, sigma=self.config.rebalance_sigma)
        return torch.from_numpy(table).to(target_ab.device)[_bin_index(target_ab)]

    # ── evaluation ────────────────────────────────────────────────────────────────────────
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
        """The whole predicted Lab image, the input's L then the predicted ab (like the targets),
        from one plain forward pass: what training measures."""
        return torch.cat([inputs.float(), models[self.inference_model_name](inputs).float()], dim=1)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
        """PSNR and SSIM of the RGB result, and its colorfulness over the ground truth's; the same
        for two baselines: ``gray`` (the input's L alone, a = b = 0) and ``mean_color`` (the
        input's L with the mean ab of every training target seen; before any training step, of
        this batch's targets). Outputs and targets may be Lab (3 channels) or ab alone.

        ``colorfulness_ratio`` is the batch's mean Hasler-Süsstrunk colorfulness over the
        ground truth's, the latter floored at 1 (visually gray) so gray batches stay finite.
        """
        inputs = inputs.float()
        lightness_only = inputs[:, :1]
        outputs, targets = _as_lab(outputs, lightness_only), _as_lab(targets, lightness_only)
        reference = self.to_display(targets)
        seen_ab = self.statistics.mean_ab()
        if seen_ab is None:
            mean_color = targets[:, 1:].mean(dim=(0, 2, 3), keepdim=True)
        else:
            mean_color = torch.tensor(seen_ab, dtype=torch.float32, device=inputs.device).view(1, 2, 1, 1)
            mean_color /= AB_SCALE
        candidates = {
            "": outputs,
            "_gray": _as_lab(torch.zeros_like(targets[:, 1:]), lightness_only),
            "_mean_color": _as_lab(mean_color.expand_as(targets[:, 1:]), lightness_only),
        }
        results: dict[str, float] = {}
        for suffix, lab in candidates.items():
            results.update(_quality(self.to_display(lab), reference, suffix))
        return results

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The gray picture (HxWx1) of ``image``'s own CIE L: what a user colorizes."""
        return gray_of(image)

    def image_metrics(
        self, results: torch.Tensor, truths: torch.Tensor, inputs: torch.Tensor
    ) -> dict[str, float]:
        """As :meth:`metrics` (PSNR, SSIM, colorfulness ratio), on ``run()``'s RGB result at full
        resolution, and the same for the ``gray`` input itself, the baseline to beat."""
        return {**_quality(results, truths, ""), **_quality(inputs, truths, "_gray")}

    def to_display(self, tensor: torch.Tensor) -> torch.Tensor:
        """Model-space batches to RGB in [0, 1], Nx3xHxW, on the tensor's device.

        1 channel (L): its gray image. 3 channels (Lab): the colour image. 2 channels (ab alone,
        a raw network output): its colours at a constant mid lightness (L = 50), a chroma map.
        """
        batch = tensor.detach().float()
        count, channels, height, width = batch.shape
        if channels == 2:
            # An encoded L of 0 is L = 50.
            batch = torch.cat([batch.new_zeros(count, 1, height, width), batch], dim=1)
        elif channels == 1:
            batch = torch.cat([batch, batch.new_zeros(count, 2, height, width)], dim=1)
        elif channels != 3:
            raise ValueError(f"colorize tensors have 1 (L), 2 (ab) or 3 (Lab) channels, not {channels}")
        # One OpenCV call for the whole batch, stacked as one tall image; np.array copies, so the
        # caller's tensor is never written to.
        lab = np.array(batch.cpu().permute(0, 2, 3, 1).numpy(), dtype=np.float32, order="C")
        lab = lab.reshape(count * height, width, 3)
        lab[..., 0] = decode_lightness(lab[..., 0])
        lab[..., 1:] *= np.float32(AB_SCALE)
        rgb = torch.from_numpy(lab_to_rgb(lab)).view(count, height, width, 3).permute(0, 3, 1, 2)
        return rgb.to(tensor.device)


class ColourStatistics:
    """Running statistics of the training targets' colours: the ab histogram (the prior of the
    rebalanced loss) and the mean ab (the mean-colour baseline). Kept by the task for one run."""

    def __init__(self) -> None:
        self.counts = np.zeros(AB_BINS * AB_BINS, dtype=np.int64)
        self.ab_sum = np.zeros(2, dtype=np.float64)
        self.pixels = 0

    def update(self, target_ab: torch.Tensor) -> None:
        """Count an Nx2xHxW batch of target ab (model space)."""
        batch = target_ab.detach().float()
        self.counts += _histogram(batch).numpy()
        self.ab_sum += batch.sum(dim=(0, 2, 3)).double().cpu().numpy() * AB_SCALE
        self.pixels += batch.shape[0] * batch.shape[2] * batch.shape[3]

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "ab_sum": self.ab_sum.tolist(), "pixels": self.pixels}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            self.counts = np.asarray(state["counts"], dtype=np.int64)
            self.ab_sum = np.asarray(state["ab_sum"], dtype=np.float64)
            self.pixels = int(state["pixels"])

    def mean_ab(self) -> tuple[float, float] | None:
        """Mean (a, b) in Lab units of every target pixel counted, or None before the first."""
        if not self.pixels:
            return None
        return float(self.ab_sum[0]) / self.pixels, float(self.ab_sum[1]) / self.pixels


def flip_agreement(ab: torch.Tensor, mirrored: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Nx1x1x1 confidence in (0, 1] of Nx2xHxW model-space ab predicted for pictures and (flipped
    back) for their mirror images: 1 / (1 + d^2 / tolerance^2) per pixel, d their distance in
    Lab units, averaged over each picture. A network that knows what it sees colours a mirrored
    picture alike; on unfamiliar pictures its guesses flip with the picture."""
    distance = (ab - mirrored).square().sum(dim=1, keepdim=True) * (AB_SCALE / tolerance) ** 2
    return (1 / (1 + distance)).mean(dim=(1, 2, 3), keepdim=True)


def _quality(images: torch.Tensor, references: torch.Tensor, suffix: str) -> dict[str, float]:
    """PSNR, SSIM and colorfulness ratio (the images' mean colorfulness over the references',
    the latter floored at 1, visually gray, so that gray references stay finite) of RGB batches,
    each name ending in ``suffix``; no ratio for the gray baseline, 0 by construction."""
    scores = {"psnr" + suffix: psnr(images, references), "ssim" + suffix: ssim(images, references)}
    if suffix != "_gray":
        scores["colorfulness_ratio" + suffix] = colorfulness(images) / max(colorfulness(references), 1.0)
    return scores


def _ab_of(tensor: torch.Tensor) -> torch.Tensor:
    """The ab channels of a Lab (3-channel) or ab (2-channel) model-space batch."""
    return tensor[:, 1:] if tensor.shape[1] == 3 else tensor


def _as_lab(tensor: torch.Tensor, lightness: torch.Tensor) -> torch.Tensor:
    """A Lab batch: ``tensor`` itself if it has 3 channels, else ``lightness`` joined with its ab."""
    return tensor if tensor.shape[1] == 3 else torch.cat([lightness, tensor.to(lightness.dtype)], dim=1)


def _bin_index(target_ab: torch.Tensor) -> torch.Tensor:
    """Flat ab-bin index (see ``color.ab_bin_index``) of every pixel of an Nx2xHxW batch, NxHxW."""
    bins = ((target_ab.float() * AB_SCALE - AB_BIN_START) / AB_BIN_SIZE).floor().clamp_(0, AB_BINS - 1).long()
    return bins[:, 0] * AB_BINS + bins[:, 1]


def _histogram(target_ab: torch.Tensor) -> torch.Tensor:
    """Pixel counts per ab bin of an Nx2xHxW batch, on the CPU."""
    return torch.bincount(_bin_index(target_ab).flatten(), minlength=AB_BINS * AB_BINS).cpu()
