"""How much PSNR any colorizer can gain over the gray image on held-out ``minifigs``.

Run: python -m pytest tests/benchmarks/test_colorize_ceiling.py -p no:cacheprovider -s

A colorizer sees only L. The figures' colours are partly told by L (yellow skin, palette colours
of distinct lightness), but the backgrounds take random muted hues that L does not reveal: the
best guess there is gray. Oracles built from the ground truth bound the gain:

    gray            the input's L, no colour (the gray baseline of ``imgzoo eval colorize``)
    figure oracle   the true colours on the figure, gray background: a colorizer that gets every
                    figure pixel right and guesses the background as well as L allows
    full oracle     the ground truth itself (PSNR is then unbounded; reported as a check)

Same pictures as ``imgzoo eval colorize --data minifigs:n=200,seed=1`` with the shipped weights
(which run at 128 px). No timing: the figures are printed, and the test checks their order.

A second test splits the shipped weights' chroma error through ``run()`` into figure and
background pixels, and checks that on the figures the weights cut the gray image's error by more
than half; the print shows how much of what is left is on the backgrounds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgzoo.metrics import psnr
from imgzoo_colorize.color import lab_to_rgb, rgb_to_lab
from imgzoo_minifigs.generator import render_minifig_with_mask

HELD_OUT_SEED = 1


@pytest.mark.parametrize("size", [128, 256])
def test_gain_over_gray_is_capped_by_the_backgrounds(size: int) -> None:
    truths, grays, figure_oracles = [], [], []
    for index in range(200):
        picture, figure = render_minifig_with_mask(index, seed=HELD_OUT_SEED, size=size)
        rgb = picture.astype(np.float32) / 255
        lab = rgb_to_lab(rgb)
        gray = lab.copy()
        gray[..., 1:] = 0
        figure_only = lab.copy()
        figure_only[~figure, 1:] = 0
        truths.append(rgb)
        grays.append(lab_to_rgb(gray))
        figure_oracles.append(lab_to_rgb(figure_only))

    def as_batch(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)

    truth = as_batch(truths)
    gray_psnr = psnr(as_batch(grays), truth)
    figure_psnr = psnr(as_batch(figure_oracles), truth)
    print(
        f"\n{size} px, 200 held-out pictures: gray {gray_psnr:.2f} dB, figure oracle {figure_psnr:.2f} dB "
        f"(+{figure_psnr - gray_psnr:.2f} dB over gray)"
    )
    assert gray_psnr < figure_psnr < 100


@pytest.mark.parametrize("weights", ["minifigs-preview", "minifigs-mse"])
def test_where_the_shipped_weights_err(weights: str) -> None:
    """The chroma error of ``run()`` with shipped weights at 256 px, split into figure and
    background pixels, against the gray image's: how much of what is left to gain is on the
    figures, the only place a colorizer can gain it."""
    import imgzoo

    pipeline = imgzoo.load("colorize", weights=weights)
    squared = {"figure": [0.0, 0.0], "background": [0.0, 0.0]}  # model, gray: summed ab error²
    pixels = {"figure": 0, "background": 0}
    for index in range(100):
        picture, figure = render_minifig_with_mask(index, seed=HELD_OUT_SEED, size=256)
        truth_ab = rgb_to_lab(picture.astype(np.float32) / 255)[..., 1:]
        result = pipeline(pipeline.task.degrade(picture.astype(np.float32) / 255, np.random.default_rng(0)))
        model_error = ((rgb_to_lab(np.asarray(result, np.float32))[..., 1:] - truth_ab) ** 2).sum(axis=-1)
        gray_error = (truth_ab**2).sum(axis=-1)
        for region, where in (("figure", figure), ("background", ~figure)):
            squared[region][0] += float(model_error[where].sum())
            squared[region][1] += float(gray_error[where].sum())
            pixels[region] += int(where.sum())
    model_total = squared["figure"][0] + squared["background"][0]
    print(f"\nab squared error per pixel, {weights} through run() at 256 px, 100 held-out pictures:")
    for region in ("figure", "background"):
        model, gray = (total / pixels[region] for total in squared[region])
        share = squared[region][0] / model_total
        print(f"  {region:<10} model {model:7.1f}, gray {gray:7.1f}; {share:.0%} of the model's error")
    model_figure, gray_figure = (total / pixels["figure"] for total in squared["figure"])
    assert model_figure < 0.5 * gray_figure  # the figures are coloured, not left gray
