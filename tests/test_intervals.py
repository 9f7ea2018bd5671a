"""95 % intervals: Wilson for a proportion of images, a seeded bootstrap over images for means."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, binomtest

from robustlab.metrics.intervals import (
    bootstrap_mean_interval,
    per_image_share,
    successes_of,
    wilson_interval,
)


def test_wilson_hand_computed() -> None:
    # 8 of 10: p = 0.8, z^2 / n = 3.841459 / 10 = 0.3841459;
    # centre = (0.8 + 0.3841459 / 2) / 1.3841459 = 0.992073 / 1.3841459 = 0.716741;
    # half = 1.959964 / 1.3841459 * sqrt(0.8 * 0.2 / 10 + 3.841459 / 400)
    #      = 1.416013 * sqrt(0.016 + 0.0096036) = 1.416013 * 0.1600113 = 0.226578;
    # interval [0.490163, 0.943319] -> [49.02, 94.33] %.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(49.0162, abs=1e-3)
    assert high == pytest.approx(94.3318, abs=1e-3)
    # the same as scipy's implementation
    ci = binomtest(8, 10).proportion_ci(0.95, method="wilson")
    assert (low, high) == (pytest.approx(100 * ci.low), pytest.approx(100 * ci.high))


def test_wilson_edges() -> None:
    # n = 0: no image, no interval
    assert all(math.isnan(b) for b in wilson_interval(0, 0))
    # p = 0 of 10: low exactly 0; high = (z^2 / n) / (1 + z^2 / n) = 0.3841459 / 1.3841459
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(100 * 0.3841459 / 1.3841459, abs=1e-4)
    # p = 1 mirrors p = 0
    low1, high1 = wilson_interval(10, 10)
    assert high1 == 100.0 and low1 == pytest.approx(100.0 - high)
    # symmetric: the interval of the complement is the mirrored interval (ASR = 100 - AR)
    a, b = wilson_interval(3, 7)
    c, d = wilson_interval(4, 7)
    assert (a, b) == (pytest.approx(100 - d), pytest.approx(100 - c))
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


def test_successes_of_recovers_counts_and_rejects_non_proportions() -> None:
    assert successes_of(200 / 3, 3) == 2
    assert successes_of(0.0, 5) == 0 and successes_of(100.0, 5) == 5
    with pytest.raises(ValueError, match="not a proportion of n = 4"):
        successes_of(60.0, 4)  # 2.4 images


def test_wilson_coverage_is_near_95_percent() -> None:
    # Exact coverage over the binomial distribution (no simulation): Wilson's is close to 95 %.
    for n, p in [(50, 0.3), (200, 0.9), (400, 0.5)]:
        covered = 0.0
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            if low <= 100 * p <= high:
                covered += binom.pmf(k, n, p)
        assert 0.92 <= covered <= 0.98, (n, p, covered)


def test_bootstrap_is_deterministic_and_order_free() -> None:
    rng = np.random.default_rng(1)
    values = pd.Series(rng.integers(0, 6, size=150) * 20.0, index=np.arange(150) * 3)
    first = bootstrap_mean_interval(values)
    assert bootstrap_mean_interval(values) == first  # bit-identical
    shuffled = values.sample(frac=1.0, random_state=7)
    assert bootstrap_mean_interval(shuffled) == first  # ordered by image index first
    assert bootstrap_mean_interval(values, seed=1) != first  # the seed is what varies it
    low, high = first
    assert low < values.mean() < high


def test_bootstrap_hand_computed_small_cases() -> None:
    # Two images, 0 % and 100 %: resampled means are 0, 50, 100 with probabilities 1/4, 1/2,
    # 1/4, so the 2.5 % and 97.5 % quantiles are 0 and 100.
    assert bootstrap_mean_interval(pd.Series([0.0, 100.0])) == (0.0, 100.0)
    # One image or equal values: every resample has the same mean.
    assert bootstrap_mean_interval(pd.Series([40.0])) == (40.0, 40.0)
    assert bootstrap_mean_interval(pd.Series([60.0] * 5)) == (60.0, 60.0)
    assert all(math.isnan(b) for b in bootstrap_mean_interval(pd.Series([], dtype=float)))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean_interval(pd.Series([1.0, math.nan]))
    with pytest.raises(ValueError, match="one value per image"):
        bootstrap_mean_interval(pd.Series([1.0, 2.0], index=[0, 0]))


def test_bootstrap_coverage_sanity() -> None:
    # 200 simulated data sets: 100 images, each image's accuracy over 5 cells drawn as
    # Binomial(5, 0.6) / 5; the true mean is 60 %. A 95 % interval should cover it about 95 %
    # of the time (the percentile bootstrap runs slightly short at this n).
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        values = pd.Series(rng.binomial(5, 0.6, size=100) * 20.0)
        low, high = bootstrap_mean_interval(values, resamples=1000, seed=trial)
        covered += low <= 60.0 <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_per_image_share_over_a_set_of_cells() -> None:
    # image 0: fog 1 right, fog 2 wrong, noise 1 right -> 2/3; image 1: all wrong -> 0;
    # the noise rows of image 1 are left out when only fog is asked for.
    outcomes = pd.DataFrame(
        {
            "corruption": ["fog", "fog", "noise", "fog", "fog", "noise"],
            "severity": [1, 2, 1, 1, 2, 1],
            "index": [0, 0, 0, 1, 1, 1],
            "correct": [True, False, True, False, False, False],
        }
    )
    both = per_image_share(outcomes, "corruption", ["fog", "noise"])
    assert list(both.index) == [0, 1]
    assert list(both) == [pytest.approx(200 / 3), 0.0]
    assert list(per_image_share(outcomes, "corruption", ["fog"])) == [50.0, 0.0]
    with pytest.raises(ValueError, match="variant"):
        per_image_share(outcomes, "variant", ["x"])
