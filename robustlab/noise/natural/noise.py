"""Noise corruptions of ImageNet-C: Gaussian, shot (Poisson) and impulse (salt-and-pepper).

Each value of each channel gets its own draw (grey images: one draw per pixel).
"""

from __future__ import annotations

import numpy as np

from robustlab.noise.natural._base import corruptions, to_float, to_uint8
from robustlab.noise.natural.tables import param_for


@corruptions.register("gaussian_noise")
def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise: x + N(0, sigma^2), x and sigma in [0, 1] intensity units."""
    sigma = param_for("gaussian_noise", images, severity)
    noise = rng.standard_normal(images.shape, dtype=np.float32)
    return to_uint8(to_float(images) + np.float32(sigma) * noise)


@corruptions.register("shot_noise")
def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Photon noise: Poisson(x * c) / c, c photons at full intensity."""
    c = param_for("shot_noise", images, severity)
    counts = rng.poisson(images.astype(np.float64) * (c / 255.0))
    return to_uint8(counts.astype(np.float32) * np.float32(1 / c))


@corruptions.register("impulse_noise")
def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: each value becomes 255 with probability a/2 and 0 with a/2.

    The same law as ``skimage.util.random_noise(mode="s&p", amount=a)`` (salt:pepper 1:1).
    """
    amount = param_for("impulse_noise", images, severity)
    u = rng.random(images.shape, dtype=np.float32)
    out = images.copy()
    out[u < amount / 2] = 255
    out[(u >= amount / 2) & (u < amount)] = 0
    return out
