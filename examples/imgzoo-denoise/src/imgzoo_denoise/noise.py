"""The noise models a clean image is corrupted with to make a training input.

Each takes an HxWxC float32 image in [0, 1] (C = 1 or 3) and returns a new, noisy one of the
same shape. ``strength`` means, per model:

    gaussian      the standard deviation of additive noise (0.1 is 25.5 on the 0-255 scale)
    salt_pepper   the fraction of pixels replaced by black or white
    jpeg          1 - quality / 100 of a JPEG round trip (0.9 is quality 10)

numpy and OpenCV only: the data pipeline calls this in its worker processes.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["NOISE_MODELS", "add_noise", "jpeg_quality"]

NOISE_MODELS = ("gaussian", "salt_pepper", "jpeg")


def add_noise(image: np.ndarray, model: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` corrupted by the noise ``model`` at ``strength``; random draws come from ``rng``."""
    if model == "gaussian":
        noisy = image + rng.normal(0.0, strength, image.shape).astype(np.float32)
        return np.clip(noisy, 0.0, 1.0, out=noisy)
    if model == "salt_pepper":
        height, width = image.shape[:2]
        hit = rng.random((height, width)) < strength
        white = rng.random((height, width)) < 0.5
        noisy = image.astype(np.float32, copy=True)
        # Whole pixels turn black or white, in every channel at once, as a dead sensor pixel does.
        noisy[hit] = white[hit, None].astype(np.float32)
        return noisy
    if model == "jpeg":
        return _jpeg_round_trip(image, jpeg_quality(strength))
    raise ValueError(f"unknown noise model {model!r}; choose one of {', '.join(NOISE_MODELS)}")


def jpeg_quality(strength: float) -> int:
    """The JPEG quality (1-100) that a ``jpeg`` noise ``strength`` stands for."""
    return int(min(100, max(1, round(100 * (1 - strength)))))


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    colour = pixels.shape[2] == 3
    # JPEG's chroma subsampling assumes OpenCV's BGR order; a gray image is encoded as is.
    encoded_ok, encoded = cv2.imencode(
        ".jpg",
        cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if colour else pixels,
        [cv2.IMWRITE_JPEG_QUALITY, quality],
    )
    if not encoded_ok:
        raise ValueError(f"OpenCV could not JPEG-encode a {pixels.shape} image")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if decoded is None:
        raise ValueError(f"OpenCV could not decode its own JPEG of a {pixels.shape} image")
    rgb = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB) if colour else decoded[..., None]
    return rgb.astype(np.float32) / 255
