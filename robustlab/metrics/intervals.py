"""95 % intervals of accuracy-type numbers (docs/metrics.md, "Intervals").

- :func:`wilson_interval`: a single proportion over ``n`` distinct images (Wilson score interval);
- :func:`bootstrap_mean_interval`: a mean over images of per-image values, e.g. the mean
  corruption accuracy as the mean over images of each image's accuracy over the cells of a set
  (percentile bootstrap over images, seeded, so identical inputs give identical bounds);
- :func:`per_image_share`: that per-image Series from an outcome table and a list of cell names.

All values and bounds are in percent; an interval with no image behind it is (NaN, NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
_CHUNK = 250  # resamples drawn at once (bounds memory at n * 250 indices)


def _z(confidence: float) -> float:
    from scipy.stats import norm  # here, not at the top: scipy.stats costs every stage ~0.7 s

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence}: must lie strictly between 0 and 1")
    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` in percent; (NaN, NaN) when n = 0.

    With p = successes / n and z the normal quantile: centre (p + z^2 / 2n) / (1 + z^2 / n),
    half-width z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2). It stays inside [0, 100]
    and is not degenerate at p = 0 or 1 (unlike the normal approximation).
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return math.nan, math.nan
    z = _z(confidence)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return 100.0 * low, 100.0 * high


def successes_of(value: float, n: int) -> int:
    """The count behind a percentage ``value`` of ``n`` images; an error if it is not one."""
    count = value * n / 100.0
    k = round(count)
    if abs(count - k) > 1e-6 * max(1, n) or not 0 <= k <= n:
        raise ValueError(
            f"value {value} is not a proportion of n = {n} images; a Wilson interval needs "
            "a share of distinct images (check the metric's n)"
        )
    return int(k)


def bootstrap_mean_interval(
    per_image: pd.Series,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``per_image`` (one value per image, indexed
    by image index), resampling images with replacement ``resamples`` times.

    Deterministic: the values are ordered by index and the resamples drawn from NumPy's PCG64
    with ``seed``. (NaN, NaN) for an empty Series; NaN values are an error.
    """
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: must be at least 1")
    if not per_image.index.is_unique:
        raise ValueError("bootstrap_mean_interval: one value per image expected (repeated index)")
    values = per_image.sort_index(kind="mergesort").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("bootstrap_mean_interval: per-image values contain NaN")
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    _z(confidence)  # validates confidence
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        means[start : start + size] = values[picks].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def per_image_share(outcomes: pd.DataFrame, column: str, names: Sequence[str]) -> pd.Series:
    """Per image (index), the percent of its rows correct among the rows whose ``column`` is in
    ``names`` (e.g. the (corruption, severity) cells of a set of corruptions), sorted by index.

    When every cell holds the same images (the pipeline's case), the mean of this Series equals
    the mean over cells of the cell accuracies.
    """
    missing = [c for c in (column, "index", "correct") if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcome table lacks column(s) {', '.join(missing)}")
    rows = outcomes[outcomes[column].astype(str).isin([str(n) for n in names])]
    per_image = rows.groupby("index", sort=True)["correct"].mean().astype("float64") * 100.0
    return per_image.rename("accuracy")
