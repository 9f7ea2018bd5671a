"""Noise corruptions of ImageNet-C: Gaussian, shot (Poisson) and impulse (salt-and-pepper).

Each value of each channel gets its own draw (grey images: one draw per pixel).
"""

from __future__ import annotations

from functools import lru_cache

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
    counts = poisson_of_levels(images, c / 255.0, rng)
    return to_uint8(counts.astype(np.float32) * np.float32(1 / c))


#: Guide-table buckets per grey level in :func:`poisson_of_levels`.
GUIDE_BUCKETS = 1024


@lru_cache(maxsize=32)
def poisson_tables(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-CDF tables of Poisson(k rate) for the grey levels k = 0..255 (read-only).

    Returns (cdf, guide): ``cdf[k, j]`` = P(X <= j) for j = 0..J - 1 (J beyond the mean by 12
    standard deviations and 40, the last column set to 1: the tail beyond it, under 1e-30, folds
    into it) and ``guide[k, b]`` = #{j : cdf[k, j] < b / B}, the smallest draw a uniform in
    bucket b of B = :data:`GUIDE_BUCKETS` can give.
    """
    from scipy.special import pdtr

    top = 255 * rate
    j = np.arange(int(top + 12 * np.sqrt(top) + 40))
    cdf = pdtr(j[None, :], np.arange(256)[:, None] * rate)
    cdf[:, -1] = 1.0
    edges = np.arange(GUIDE_BUCKETS) / GUIDE_BUCKETS
    guide = np.stack([np.searchsorted(row, edges, side="left") for row in cdf])
    for t in (cdf, guide):
        t.setflags(write=False)
    return cdf, guide


def poisson_of_levels(images: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(k rate) draws for uint8 values k, by inversion: one uniform u per value.

    The draw is #{j : cdf_k(j) < u}: the guide table gives it up to the few CDF values inside
    u's bucket, which a short loop over the values still short of u adds.
    """
    cdf, guide = poisson_tables(float(rate))
    u = rng.random(images.shape)
    level = images.astype(np.intp)
    count = guide.ravel()[level * GUIDE_BUCKETS + (u * GUIDE_BUCKETS).astype(np.intp)]
    at = level * cdf.shape[1]
    at += count
    flat_cdf = cdf.ravel()
    todo = np.flatnonzero(flat_cdf[at] < u)
    while len(todo):
        count.flat[todo] += 1
        at.flat[todo] += 1
        todo = todo[flat_cdf[at.flat[todo]] < u.flat[todo]]
    return count


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
