"""Noise corruptions of ImageNet-C: Gaussian, shot (Poisson) and impulse (salt-and-pepper).

Each value of each channel gets its own draw (grey images: one draw per pixel). Each noise
turns grey level k into output level j with a law that depends on k alone, so every value is
drawn straight from that law (:mod:`.levels`), exactly as ``uint8(clip(noisy, 0, 1) * 255)``
would give it, without float temporaries.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from robustlab.noise.natural._base import GUARD, corruptions, uniform_bits
from robustlab.noise.natural.levels import (
    LEVELS,
    LevelTables,
    OffsetTables,
    level_tables,
    offset_tables,
    sample_levels,
    sample_offsets,
)
from robustlab.noise.natural.tables import param_for

#: Input grey levels k (column) and output levels j (row) as float64.
_K = np.arange(LEVELS, dtype=np.float64)[:, None]
_J = np.arange(LEVELS, dtype=np.float64)[None, :]


@lru_cache(maxsize=64)
def gaussian_tables(sigma: float) -> LevelTables:
    """Output laws of x + N(0, sigma^2): out <= j iff k + 255 sigma z < j + 1."""
    from scipy.special import ndtr

    return level_tables(ndtr((_J + 1 - _K) / (255 * sigma)))


@lru_cache(maxsize=64)
def gaussian_offsets(sigma: float) -> OffsetTables:
    """The same laws as offsets: out = clip(k + d, 0, 255), d = floor(255 sigma z).

    k + 255 sigma z < j + 1 iff floor(255 sigma z) <= j - k (k, j integers), so P(d <= m) is
    :func:`gaussian_tables`' CDF at j - k = m, computed from the same float expression.
    """
    from scipy.special import ndtr

    m = np.arange(-LEVELS, LEVELS, dtype=np.float64)
    return offset_tables(ndtr((m + 1) / (255 * sigma)))


@corruptions.register("gaussian_noise")
def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise: x + N(0, sigma^2), x and sigma in [0, 1] intensity units."""
    sigma = param_for("gaussian_noise", images, severity)
    return sample_offsets(images, gaussian_offsets(float(sigma)), rng)


@lru_cache(maxsize=64)
def speckle_tables(sigma: float) -> LevelTables:
    """Output laws of x + x N(0, sigma^2): out <= j iff k (1 + sigma z) < j + 1 (k = 0: 0)."""
    from scipy.special import ndtr

    with np.errstate(divide="ignore"):
        cdf = ndtr(((_J + 1) / _K - 1) / sigma)  # k = 0: +inf, CDF 1 (zero stays zero)
    return level_tables(cdf)


def speckle(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise x + x N(0, sigma^2) of uint8 images (one draw per value)."""
    return sample_levels(images, speckle_tables(float(sigma)), rng)


@lru_cache(maxsize=64)
def shot_tables(photons: float) -> LevelTables:
    """Output laws of Poisson(x c) / c: count p gives level floor(255 p / c) (at most 255)."""
    from scipy.special import pdtr

    rate = _K * (photons / 255)
    top = 255 * photons / 255
    counts = np.arange(int(top + 12 * np.sqrt(top) + 40))
    level = np.minimum(np.floor(counts * (255 / photons) + GUARD), 255)
    # the largest count that still gives a level <= j (-1: none)
    largest = np.searchsorted(level, np.arange(LEVELS), side="right") - 1
    cdf = np.where(largest >= 0, pdtr(np.maximum(largest, 0)[None, :], rate), 0.0)
    return level_tables(cdf)


@corruptions.register("shot_noise")
def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Photon noise: Poisson(x * c) / c, c photons at full intensity."""
    c = param_for("shot_noise", images, severity)
    return sample_levels(images, shot_tables(float(c)), rng)


@lru_cache(maxsize=64)
def impulse_tables(amount: float) -> LevelTables:
    """Output laws of salt and pepper: 0 and 255 with probability amount / 2 each, else k."""
    pmf = np.zeros((LEVELS, LEVELS))
    pmf[:, 0] += amount / 2
    pmf[:, -1] += amount / 2
    pmf[np.arange(LEVELS), np.arange(LEVELS)] += 1 - amount
    return level_tables(np.cumsum(pmf, axis=1))


@corruptions.register("impulse_noise")
def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: each value becomes 255 with probability a/2 and 0 with a/2.

    The same law as ``skimage.util.random_noise(mode="s&p", amount=a)`` (salt:pepper 1:1).
    """
    amount = param_for("impulse_noise", images, severity)
    return salt_and_pepper(images, float(amount), rng)


def salt_and_pepper(images: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`impulse_tables`' law drawn directly: with one 32-bit uniform r per value, pepper
    (0) where r < t_0, salt (255) where r >= t_1, else the value unchanged; t_0 and t_1 are the
    tables' thresholds (a/2 and 1 - a/2 of 2^32, rounded up), so the law is the tables' one."""
    thresholds = impulse_tables(amount).thresholds
    pepper, salt = np.uint32(thresholds[1, 0]), thresholds[1, 1]  # level 1: 0, 1, 255
    r = uniform_bits(rng, images.shape, np.uint32)
    if images.size == 0:
        return images.copy()
    # OpenCV on r as int32 (r - 2^32 from 2^31; t_0 <= 2^31 <= t_1): a 255 mask where
    # 0 <= r < t_0 (pepper) and where t_1 - 2^32 <= r - 2^32 < 0 (salt), then
    # max(x - pepper, salt) with uint8 saturation
    rows = r.view(np.int32).reshape(-1, images.shape[-1])
    is_pepper = cv2.inRange(rows, 0, int(pepper) - 1)
    is_salt = cv2.inRange(rows, int(salt) - (1 << 32), -1)
    out = cv2.subtract(images.reshape(rows.shape), is_pepper)
    return cv2.max(out, is_salt, dst=out).reshape(images.shape)
