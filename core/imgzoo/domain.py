"""How far a picture lies from a model's training data, from the network's own features.

A task's :meth:`~imgzoo.Task.domain_features` gives a feature map of the picture (colorize: its
autoencoder's bottleneck); :func:`pooled_features` pools each channel over space into its mean and
standard deviation (log1p of each, so that a few strong channels do not dominate). The training
pictures' pooled features are modelled as a Gaussian with a low-rank covariance (the ``rank``
strongest principal directions, and one shared variance for everything else): the *domain score*
is the squared Mahalanobis distance to it divided by the feature count, about 1 for a typical
training picture and growing with how unusual a picture is (far beyond 1 for photos the model
never saw, and for pictures off the training subspace above all).

:class:`DomainStatistics` holds that model and two thresholds, and is stored in the weights
file's metadata under ``DOMAIN_KEY`` (:func:`write_domain_statistics`), where
:func:`imgzoo.pipeline.build_task` finds it and sets ``task.domain_statistics``.
:func:`domain_fade` turns a score into a factor in [0, 1]: 1 up to ``fade_start``, 0 from
``fade_end``, smooth between. It and :meth:`DomainStatistics.score` are pure torch functions of
tensors, so that they export into an ONNX graph as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from imgzoo import weights as _weights
from imgzoo.errors import WeightsError

if TYPE_CHECKING:
    from imgzoo.task import Task

__all__ = [
    "DOMAIN_KEY",
    "DomainStatistics",
    "domain_fade",
    "fit_domain_statistics",
    "pooled_features",
    "write_domain_statistics",
]

DOMAIN_KEY = "domain"
"""The weights-file metadata key holding :meth:`DomainStatistics.to_metadata`."""

FADE_START_QUANTILE = 0.99
"""``fade_start`` is this quantile of the check pictures' scores: 1 % of in-domain pictures are
touched at all, and those only slightly."""
FADE_END_RATIO = 1.25
"""``fade_end`` is ``fade_start`` times this. Chosen for colorize on tuning pictures only
(``tests/benchmarks/reports/colorize_domain_tuning.py``: minifigures of seeds 2 to 4, OpenCV
gradients, textures and scenes, and examples/photos): past it, every tuning picture whose colours
came out worse than its gray input was faded out, save ten synthetic ones that score like
minifigures."""


def pooled_features(features: torch.Tensor) -> torch.Tensor:
    """NxCxHxW feature maps to Nx2C: log1p of each channel's mean and standard deviation over space."""
    features = features.float()
    mean = features.mean(dim=(2, 3))
    spread = (features - mean[:, :, None, None]).square().mean(dim=(2, 3)).sqrt()
    return torch.log1p(torch.cat([mean.abs(), spread], dim=1))


def domain_fade(score: torch.Tensor, fade_start: torch.Tensor, fade_end: torch.Tensor) -> torch.Tensor:
    """How much of a prediction to keep for a domain ``score`` (any shape): 1 up to ``fade_start``,
    0 from ``fade_end``, a smoothstep between. Pure tensor arithmetic, no branching on values: it
    exports into an ONNX graph as it is."""
    progress = ((score - fade_start) / (fade_end - fade_start)).clamp(0.0, 1.0)
    return 1.0 - progress * progress * (3.0 - 2.0 * progress)


@dataclass(frozen=True)
class DomainStatistics:
    """A low-rank Gaussian model of the training pictures' pooled features, and the score range
    over which a task fades its prediction (or warns)."""

    mean: torch.Tensor
    """D, the training pictures' mean pooled features."""
    components: torch.Tensor
    """KxD, the covariance's K strongest principal directions (orthonormal rows)."""
    component_variances: torch.Tensor
    """K, the variance along each of them."""
    residual_variance: torch.Tensor
    """A scalar: the mean variance along every other direction."""
    fade_start: torch.Tensor
    """A scalar: the score from which the prediction starts fading."""
    fade_end: torch.Tensor
    """A scalar: the score from which nothing of the prediction is left."""
    fitted_on: str = ""
    """What the statistics were fitted on, for people."""

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """N domain scores of NxCxHxW feature maps (see the module docstring); pure torch."""
        centred = pooled_features(features) - self.mean.to(features.device)
        components = self.components.to(features.device)
        along = centred @ components.T
        across = centred - along @ components
        distance = (along.square() / self.component_variances.to(features.device)).sum(dim=1)
        distance = distance + across.square().sum(dim=1) / self.residual_variance.to(features.device)
        return distance / centred.shape[1]

    def fade(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N scores, N fade factors) of NxCxHxW feature maps; pure torch."""
        score = self.score(features)
        start, end = self.fade_start.to(features.device), self.fade_end.to(features.device)
        return score, domain_fade(score, start, end)

    def to_metadata(self) -> dict[str, Any]:
        """JSON values, for a weights file's metadata."""
        return {
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "component_variances": self.component_variances.tolist(),
            "residual_variance": float(self.residual_variance),
            "fade_start": float(self.fade_start),
            "fade_end": float(self.fade_end),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_metadata(cls, value: Mapping[str, Any], *, path: Path | str = "") -> DomainStatistics:
        """The statistics :meth:`to_metadata` wrote; a WeightsError naming ``path`` if they are malformed."""
        try:
            statistics = cls(
                mean=torch.tensor(value["mean"], dtype=torch.float32),
                components=torch.tensor(value["components"], dtype=torch.float32),
                component_variances=torch.tensor(value["component_variances"], dtype=torch.float32),
                residual_variance=torch.tensor(float(value["residual_variance"])),
                fade_start=torch.tensor(float(value["fade_start"])),
                fade_end=torch.tensor(float(value["fade_end"])),
                fitted_on=str(value.get("fitted_on", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise WeightsError(f"{path}: malformed {DOMAIN_KEY!r} metadata ({error})", path=path) from error
        size = statistics.mean.shape
        if statistics.components.ndim != 2 or statistics.components.shape[1:] != size:
            raise WeightsError(f"{path}: malformed {DOMAIN_KEY!r} metadata (component shapes)", path=path)
        return statistics


@torch.no_grad()
def fit_domain_statistics(
    task: Task,
    models: Mapping[str, torch.nn.Module],
    pictures: Iterable[np.ndarray],
    check_pictures: Iterable[np.ndarray],
    *,
    rank: int = 8,
    fitted_on: str = "",
) -> DomainStatistics:
    """Fit the statistics of ``task``'s :meth:`~imgzoo.Task.domain_features` on ``pictures`` (what
    ``run()`` takes: gray pictures for colorize, edge maps for edges2photo), and place the fade
    thresholds by the scores of ``check_pictures``, other in-domain pictures (see
    ``FADE_START_QUANTILE`` and ``FADE_END_RATIO``). ``models`` as
    :meth:`~imgzoo.Task.prepare_inference` returns them, in eval mode."""
    fitted = torch.cat([_pooled(task, models, picture) for picture in pictures])
    mean = fitted.mean(dim=0)
    _, singular_values, directions = torch.linalg.svd(fitted - mean, full_matrices=False)
    count, size = fitted.shape
    rank = max(1, min(rank, count - 1, size - 1))
    variances = singular_values.square() / (count - 1)
    residual = variances[rank:].sum() / (size - rank)
    unfaded = DomainStatistics(
        mean=mean,
        components=directions[:rank].contiguous(),
        component_variances=variances[:rank].clamp_min(1e-12),
        residual_variance=residual.clamp_min(1e-12),
        fade_start=torch.tensor(math.inf),
        fade_end=torch.tensor(math.inf),
        fitted_on=fitted_on,
    )
    checked = torch.cat([unfaded.score(_features(task, models, picture)) for picture in check_pictures])
    fade_start = torch.quantile(checked, FADE_START_QUANTILE)
    return DomainStatistics(
        mean=unfaded.mean,
        components=unfaded.components,
        component_variances=unfaded.component_variances,
        residual_variance=unfaded.residual_variance,
        fade_start=fade_start,
        fade_end=fade_start * FADE_END_RATIO,
        fitted_on=fitted_on,
    )


def write_domain_statistics(path: str | Path, statistics: DomainStatistics) -> str:
    """Store ``statistics`` in the metadata of the weights file ``path`` (its tensors as they are,
    replacing any statistics it held) and return the file's new sha256."""
    tensors, metadata = _weights.read_tensors(path)
    metadata = {key: value for key, value in metadata.items() if key != _weights.DIGEST_KEY}
    metadata[DOMAIN_KEY] = statistics.to_metadata()
    return _weights.save_weights(path, tensors, metadata=metadata)


def _features(task: Task, models: Mapping[str, torch.nn.Module], picture: np.ndarray) -> torch.Tensor:
    return task.domain_features(models, task.preprocess(picture))


def _pooled(task: Task, models: Mapping[str, torch.nn.Module], picture: np.ndarray) -> torch.Tensor:
    return pooled_features(_features(task, models, picture))
