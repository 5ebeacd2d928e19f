"""Image quality metrics on batches of RGB images in [0, 1] (Nx3xHxW tensors).

Each returns the mean over the batch as a float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from imgzoo.images import luma

__all__ = ["checkerboard", "colorfulness", "l1", "luma", "psnr", "sharpness", "ssim"]


def l1(images: torch.Tensor, references: torch.Tensor) -> float:
    return float((images.float() - references.float()).abs().mean())


def psnr(images: torch.Tensor, references: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, per image then averaged (capped at 100 dB for equal images)."""
    mse = ((images.float() - references.float()) ** 2).flatten(1).mean(1)
    values = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return float(values.mean())


def ssim(images: torch.Tensor, references: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004) per colour channel, then averaged, with the usual
    11x11 Gaussian window (sigma 1.5). Per channel rather than on luma, so that colour errors
    count: a colourization keeps its input's luma by construction."""
    x, y = images.float(), references.float()
    channels = x.shape[1]
    size = min(11, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # odd window
    coords = torch.arange(size, dtype=torch.float32, device=x.device) - size // 2
    gauss = torch.exp(-(coords**2) / (2 * 1.5**2))
    window = (gauss[:, None] * gauss[None, :] / gauss.sum() ** 2).expand(channels, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.flatten(1).mean(1).mean())


def colorfulness(images: torch.Tensor) -> float:
    """Hasler and Süsstrunk (2003) colorfulness, on 0-255 RGB as in the paper."""
    rgb = images.float() * 255
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    std = torch.sqrt(rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False))
    mean = torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
    return float((std + 0.3 * mean).mean())


def sharpness(images: torch.Tensor) -> float:
    """Variance of the Laplacian of luma (0-255 scale): higher is sharper."""
    response = _laplacian(luma(images.float(), channel_axis=1) * 255)
    return float(response.flatten(1).var(1, unbiased=False).mean())


def _laplacian(luma: torch.Tensor) -> torch.Tensor:
    """The 4-neighbour Laplacian of Nx1xHxW ``luma``, on its interior (no padding)."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=luma.device)
    return F.conv2d(luma, kernel.view(1, 1, 3, 3))


CHECKERBOARD_WINDOW = 8
"""Side of the windows :func:`checkerboard` averages over: a period-2 pattern keeps its sign
across one, the fine texture and edges of a picture mostly do not."""


def checkerboard(images: torch.Tensor) -> float:
    """Energy of the 2x2 patterns on luma's pixel grid: the artefact of stride-2 transposed
    convolutions, which weight odd and even output pixels differently.

    The Laplacian of luma (0-255 scale; it keeps period-2 patterns and removes flat areas and
    gradients) is multiplied by the three period-2 sign patterns (alternating along x, along y,
    and both: a checkerboard), each product averaged over 8x8 windows, and the squares summed:
    a pattern aligned with the grid adds up within a window, while edges and texture, whose
    alternations have no fixed phase, mostly cancel. Compare it with the reference pictures':
    natural images have some.
    """
    detail = _laplacian(luma(images.float(), channel_axis=1) * 255)
    height = detail.shape[-2] - detail.shape[-2] % CHECKERBOARD_WINDOW
    width = detail.shape[-1] - detail.shape[-1] % CHECKERBOARD_WINDOW
    if height == 0 or width == 0:
        return 0.0
    detail = detail[..., :height, :width]
    rows = 1 - 2 * (torch.arange(height, device=detail.device) % 2).to(detail.dtype)
    cols = 1 - 2 * (torch.arange(width, device=detail.device) % 2).to(detail.dtype)
    patterns = (cols.expand(height, width), rows[:, None].expand(height, width), rows[:, None] * cols)
    energy = sum(F.avg_pool2d(detail * pattern, CHECKERBOARD_WINDOW) ** 2 for pattern in patterns)
    return float(torch.as_tensor(energy).flatten(1).mean(1).mean())
