"""The quality metrics every task reports."""

from __future__ import annotations

import torch

from imgzoo.metrics import checkerboard, colorfulness, l1, psnr, sharpness, ssim


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_identical_images() -> None:
    x = _images()
    assert l1(x, x) == 0 and psnr(x, x) == 100.0 and abs(ssim(x, x) - 1) < 1e-5


def test_psnr_matches_its_definition() -> None:
    x = torch.zeros(1, 3, 8, 8)
    y = torch.full((1, 3, 8, 8), 0.1)
    assert abs(psnr(x, y) - 20.0) < 1e-4  # mse 0.01 -> 20 dB


def test_ssim_falls_with_noise_and_sees_colour() -> None:
    x = _images()
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert ssim(x, noisy) < ssim(x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1)) < 1
    swapped = x[:, [2, 1, 0]]  # same structure, other colours
    assert ssim(x, swapped) < 0.9


def test_colorfulness_and_sharpness() -> None:
    gray = _images()[:, :1].expand(-1, 3, -1, -1)
    assert colorfulness(gray) == 0
    assert colorfulness(_images()) > 10
    sharp = _images()
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1)
    assert sharpness(blurred) < sharpness(sharp) / 2


def test_checkerboard_sees_a_grid_aligned_2x2_pattern_not_texture() -> None:
    smooth = torch.linspace(0.2, 0.8, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    assert checkerboard(smooth) < 1e-6
    noise = torch.rand(1, 3, 66, 66, generator=torch.Generator().manual_seed(0))
    texture = torch.nn.functional.avg_pool2d(noise, 3, stride=1) * 0.5 + 0.25  # fine, of no fixed phase
    # The transposed-convolution artefact, 5 of 255 levels: odd and even pixels offset alike everywhere.
    cells = torch.zeros(64, 64)
    cells[::2, ::2] = cells[1::2, 1::2] = 0.02
    stripes = torch.zeros(64, 64).index_fill_(1, torch.arange(0, 64, 2), 0.02)
    for pattern in (cells, cells.roll(1, 0), stripes, stripes.roll(1, 1)):
        assert checkerboard(texture + pattern) > 4 * checkerboard(texture)
    assert checkerboard(torch.rand(1, 3, 9, 9)) == 0.0  # smaller than one window: nothing to measure
