"""Paired comparisons between two runs of one dataset and architecture, over the same images.

Every comparison joins the two runs' stored per-example outcomes on the image ``index``: only
images both runs evaluated count, and ``n`` is the number of those distinct images. The
``difference`` is run B minus run A in percentage points.

- Binary outcomes (clean accuracy; robust accuracy of an attack at one eps): McNemar's exact
  test (two-sided binomial test of the discordant pairs, ``scipy.stats.binomtest``) and
  Newcombe's hybrid score interval for a difference of paired proportions (Newcombe 1998,
  Stat. Med. 17:2635, method 10). The interval is closed-form, so it needs no random seed, and
  unlike a bootstrap or Wald interval it stays informative when few pairs are discordant (a
  bootstrap of 3 discordant pairs out of 10 collapses onto a handful of values).
- Mean corruption accuracy: per image, the mean correctness over the (corruption, severity)
  cells of a corruption set (ImageNet-C's 15) both runs evaluated; the interval is a seeded
  percentile bootstrap over images of the mean paired difference, the p-value a seeded
  sign-flip permutation test (under "no difference" each image's difference is symmetric about
  0). Per-image means are not binary, so McNemar does not apply; both procedures are
  deterministic for the same inputs and seed.

Orientation (:func:`orient`): run B is the "treatment". A CLAT run (``X+clat``) is B against a
run without CLAT; otherwise a technique other than ``standard`` is B against ``standard``;
otherwise B is the alphabetically later technique. So ``pgd_at+clat`` vs ``pgd_at`` reads as
CLAT minus PGD-AT, and ``pgd_at`` vs ``standard`` as adversarial training minus standard. A
named CLAT variant (a technique key without the suffix, robustlab.variants) counts as CLAT
when it is listed in ``clat``.

Rows (columns :data:`COLUMNS`): ``metric`` is ``accuracy`` (clean; ``noise`` "", ``level``
NaN), ``robust_accuracy`` (``noise`` the attack, ``level`` its eps in pixel scale, as in
``results/metrics.parquet``) or ``mean_corruption_accuracy`` (``noise`` the corruption set's
name, ``level`` NaN).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import pyarrow as pa

from robustlab.metrics.natural import CORRUPTION_SETS
from robustlab.variants import CLAT_SUFFIX

COLUMNS = [
    "dataset",
    "arch",
    "run_a",
    "run_b",
    "metric",
    "noise",
    "level",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
]
SCHEMA = pa.schema(
    [(c, pa.string()) for c in COLUMNS[:6]]
    + [(c, pa.float64()) for c in COLUMNS[6:11]]
    + [("n", pa.int64())]
)
SORT_COLUMNS = ["dataset", "arch", "run_a", "run_b", "metric", "noise", "level"]

Z95 = 1.959963984540054  # standard normal 97.5 % quantile
RESAMPLES = 10_000

IMAGENET_C = CORRUPTION_SETS["imagenet_c"]  # the 15 corruptions mCE averages over

Run = tuple[str, str, str]  # (dataset, arch, technique)


# -- pairs ----------------------------------------------------------------------------------


def _treatment_rank(technique: str, clat: Collection[str] = ()) -> tuple[bool, bool, str]:
    is_clat = technique.endswith(CLAT_SUFFIX) or technique in clat
    return (is_clat, technique != "standard", technique)


def orient(first: str, second: str, clat: Collection[str] = ()) -> tuple[str, str]:
    """``(run_a, run_b)`` of two techniques, B the treatment (module docstring); ``clat``:
    technique keys of CLAT variants named without the "+clat" suffix."""
    if first == second:
        raise ValueError(f"cannot compare technique {first!r} with itself")
    ordered = sorted((first, second), key=lambda t: _treatment_rank(t, clat))
    return ordered[0], ordered[1]


def run_pairs(runs: Iterable[Run], clat: Collection[str] = ()) -> list[tuple[Run, Run]]:
    """Every oriented pair ``(run_a, run_b)`` of runs sharing dataset and architecture, sorted.
    Runs of different datasets or architectures are never paired; ``clat`` as in orient."""
    groups: dict[tuple[str, str], set[str]] = {}
    for dataset, arch, technique in runs:
        groups.setdefault((dataset, arch), set()).add(technique)
    pairs = []
    for (dataset, arch), techniques in sorted(groups.items()):
        for first, second in combinations(sorted(techniques), 2):
            a, b = orient(first, second, clat)
            pairs.append(((dataset, arch, a), (dataset, arch, b)))
    return sorted(pairs)


# -- statistics -----------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (fractions in [0, 1])."""
    if n <= 0:
        raise ValueError("wilson_interval: n must be positive")
    p = successes / n
    denom = n + z * z
    centre = (successes + z * z / 2) / denom
    half = z * math.sqrt(n * p * (1 - p) + z * z / 4) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_interval(
    both: int, only_a: int, only_b: int, neither: int, z: float = Z95
) -> tuple[float, float]:
    """Newcombe's (1998, method 10) square-and-add interval of p_B - p_A (fractions) from a
    paired 2x2 table of counts: correct under both runs, only under A, only under B, under
    neither. Wilson score limits of each proportion, combined with their estimated correlation
    (as in Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables", 8.5)."""
    n = both + only_a + only_b + neither
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, z)
    low_b, high_b = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    # phi: the correlation of the two proportions with Newcombe's continuity correction
    # (a positive cross-product difference is reduced by n/2, down to 0).
    cross = both * neither - only_a * only_b
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = 0.0 if margins == 0 else cross / math.sqrt(margins)
    delta = math.sqrt(
        max(
            0.0,
            (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a) + (high_a - p_a) ** 2,
        )
    )
    epsilon = math.sqrt(
        max(
            0.0,
            (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a) + (p_a - low_a) ** 2,
        )
    )
    diff = p_b - p_a
    return max(-1.0, diff - delta), min(1.0, diff + epsilon)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of ``only_b`` among the discordant
    pairs at probability 1/2; 1.0 without discordant pairs."""
    from scipy.stats import binomtest  # imported here: the report reads COLUMNS without it

    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return float(binomtest(only_b, discordant, 0.5).pvalue)


def paired_binary(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float | int]:
    """Difference (points), Newcombe 95 % interval, McNemar p-value and n of two boolean
    per-image outcome arrays aligned on the same images."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired_binary: outcome arrays must be 1-D and of equal length")
    n = len(a)
    if n == 0:
        return _empty()
    both, only_a = int((a & b).sum()), int((a & ~b).sum())
    only_b, neither = int((~a & b).sum()), int((~a & ~b).sum())
    low, high = newcombe_paired_interval(both, only_a, only_b, neither)
    return {
        "difference": 100.0 * (only_b - only_a) / n,
        "ci_low": 100.0 * low,
        "ci_high": 100.0 * high,
        "p_value": mcnemar_exact(only_a, only_b),
        "n": n,
    }


def paired_mean(
    values_a: np.ndarray, values_b: np.ndarray, seed: int, resamples: int = RESAMPLES
) -> dict[str, float | int]:
    """Mean paired difference (points) of per-image values in [0, 1], its seeded percentile
    bootstrap 95 % interval over images and a seeded sign-flip permutation p-value
    ((1 + #{|permuted mean| >= |observed mean|}) / (1 + resamples))."""
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired_mean: value arrays must be 1-D and of equal length")
    if resamples < 1:
        raise ValueError("paired_mean: resamples must be at least 1")
    n = len(a)
    if n == 0:
        return _empty()
    diff = 100.0 * (b - a)
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    extreme = 0
    tol = 1e-9 * max(1.0, abs(observed))
    chunk = max(1, 2_000_000 // n)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        boot[start : start + size] = diff[picks].mean(axis=1)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        signs = rng.integers(0, 2, size=(size, n)) * 2 - 1
        extreme += int((np.abs((signs * diff).mean(axis=1)) >= abs(observed) - tol).sum())
    low, high = np.quantile(boot, [0.025, 0.975])
    return {
        "difference": observed,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": (1 + extreme) / (1 + resamples),
        "n": n,
    }


def _empty() -> dict[str, float | int]:
    nan = math.nan
    return {"difference": nan, "ci_low": nan, "ci_high": nan, "p_value": nan, "n": 0}


# -- per-image outcomes ---------------------------------------------------------------------


def _binary(frame: pd.DataFrame, what: str) -> pd.Series:
    """``correct`` indexed by image, or an error naming a repeated image."""
    dup = frame["index"].duplicated()
    if dup.any():
        raise ValueError(
            f"{what}: image index {frame.loc[dup, 'index'].iloc[0]} appears twice; rerun the "
            "stage that wrote these outcomes"
        )
    return pd.Series(frame["correct"].to_numpy(bool), index=frame["index"].to_numpy(np.int64))


def _paired_binary(a: pd.Series, b: pd.Series) -> dict[str, float | int]:
    common = a.index.intersection(b.index).sort_values()
    return paired_binary(a.loc[common].to_numpy(), b.loc[common].to_numpy())


def corruption_cells(natural: pd.DataFrame, corruptions: Sequence[str]) -> pd.Series:
    """``correct`` (bool) indexed by (corruption, severity, index), restricted to
    ``corruptions``; an error names a repeated cell."""
    rows = natural[natural["corruption"].astype(str).isin(list(corruptions))]
    key = ["corruption", "severity", "index"]
    dup = rows.duplicated(key)
    if dup.any():
        first = rows.loc[dup].iloc[0]
        raise ValueError(
            f"natural outcomes: image index {first['index']} appears twice for corruption "
            f"{first['corruption']!r} at severity {first['severity']}; rerun stages.evaluate"
        )
    index = pd.MultiIndex.from_arrays(
        [
            rows["corruption"].astype(str).to_numpy(),
            rows["severity"].to_numpy(np.float64),
            rows["index"].to_numpy(np.int64),
        ],
        names=key,
    )
    return pd.Series(rows["correct"].to_numpy(bool), index=index)


def paired_corruption_accuracy(
    natural_a: pd.DataFrame,
    natural_b: pd.DataFrame,
    corruptions: Sequence[str],
    seed: int,
    resamples: int = RESAMPLES,
) -> dict[str, float | int]:
    """:func:`paired_mean` of per-image mean correctness over the (corruption, severity) cells
    of ``corruptions`` both runs evaluated; n is the number of distinct images."""
    # unlike natural.per_image_accuracy, only the cells both runs evaluated count, so a
    # corruption one run lacks cannot shift the difference
    a = corruption_cells(natural_a, corruptions)
    b = corruption_cells(natural_b, corruptions)
    common = a.index.intersection(b.index)
    if len(common) == 0:
        return _empty()
    image = common.get_level_values("index")
    mean_a = a.loc[common].groupby(image).mean().sort_index()
    mean_b = b.loc[common].groupby(image).mean().sort_index()
    return paired_mean(mean_a.to_numpy(), mean_b.to_numpy(), seed, resamples)


# -- the table ------------------------------------------------------------------------------


def compare_runs(
    dataset: str,
    arch: str,
    technique_a: str,
    technique_b: str,
    outcomes_a: dict[str, pd.DataFrame],
    outcomes_b: dict[str, pd.DataFrame],
    corruptions: Sequence[str],
    corruption_set: str,
    seed: int,
    resamples: int = RESAMPLES,
) -> pd.DataFrame:
    """The comparison rows of run B against run A. ``outcomes_*`` hold ``clean``,
    ``adversarial`` (every attack's rows concatenated) and ``natural`` frames
    (docs/artifacts.md); an attack/eps or the corruption set only one run has is left out."""
    rows: list[dict[str, object]] = []

    def add(metric: str, noise: str, level: float, stats: dict[str, float | int]) -> None:
        if stats.get("n", 0):
            rows.append({"metric": metric, "noise": noise, "level": level, **stats})

    name = f"{dataset}/{arch}: {technique_a} vs {technique_b}"
    add(
        "accuracy",
        "",
        math.nan,
        _paired_binary(
            _binary(outcomes_a["clean"], f"{name}: clean outcomes of {technique_a}"),
            _binary(outcomes_b["clean"], f"{name}: clean outcomes of {technique_b}"),
        ),
    )
    adv_a, adv_b = outcomes_a["adversarial"], outcomes_b["adversarial"]
    if len(adv_a) and len(adv_b):
        groups_b = dict(iter(adv_b.groupby(["attack", "eps"], sort=True)))
        for key, group_a in adv_a.groupby(["attack", "eps"], sort=True):
            if key not in groups_b:
                continue
            attack, eps = str(key[0]), float(key[1])
            what = f"{name}: {attack} outcomes at eps {eps:g} of"
            stats = _paired_binary(
                _binary(group_a, f"{what} {technique_a}"),
                _binary(groups_b[key], f"{what} {technique_b}"),
            )
            add("robust_accuracy", attack, eps, stats)
    add(
        "mean_corruption_accuracy",
        corruption_set,
        math.nan,
        paired_corruption_accuracy(
            outcomes_a["natural"], outcomes_b["natural"], corruptions, seed, resamples
        ),
    )
    frame = pd.DataFrame(rows, columns=COLUMNS[4:])
    frame.insert(0, "run_b", technique_b)
    frame.insert(0, "run_a", technique_a)
    frame.insert(0, "arch", arch)
    frame.insert(0, "dataset", dataset)
    return frame


def finalize_comparisons(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate comparison rows: exact columns and dtypes, sorted, fresh index."""
    parts = [f for f in frames if len(f)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    frame = frame[COLUMNS].astype(
        {
            **dict.fromkeys(["dataset", "arch", "run_a", "run_b", "metric", "noise"], object),
            **dict.fromkeys(["level", "difference", "ci_low", "ci_high", "p_value"], "float64"),
            "n": "int64",
        }
    )
    for col in ("dataset", "arch", "run_a", "run_b", "metric", "noise"):
        frame[col] = frame[col].astype(str)
    return frame.sort_values(SORT_COLUMNS, na_position="first", kind="mergesort").reset_index(
        drop=True
    )


def comparisons_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The finalized frame as an Arrow table with :data:`SCHEMA` (string, double, int64)."""
    if list(frame.columns) != COLUMNS:
        raise ValueError(f"comparisons columns {list(frame.columns)}; expected {COLUMNS}")
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
