"""Flip probability and flip rate (ImageNet-P) from stored per-frame predictions.

Input: one row per (perturbation, index, frame) with the model's ``prediction``; frames of a
sequence are numbered 0..L-1 (``perturbation.parquet`` from stages.evaluate).

- ``flip_probability`` FP_p (percent): for each sequence the share of its L - 1 comparisons whose
  two predictions differ, averaged over sequences. Schedule perturbations
  compare consecutive frames (j - 1, j), j = 1..L-1. Noise perturbations, whose frames are not
  temporally related, compare every noisy frame j = 1..L-1 with the clean frame 0 -- Hendrycks &
  Dietterich's "x_1 is clean, compare x_j (j >= 2) with x_1" in their 1-based numbering, and
  what their evaluation code does (``vid_preds[0]`` is the reference);
- ``mean_flip_probability`` (noise ``all_perturbations``): mFP, the mean of FP_p over p;
- ``flip_rate`` FR_p = 100 * FP_p(model) / FP_p(baseline), a percentage like CE (100 = as
  stable as the baseline, lower is better), and ``mfr`` = mean_p FR_p (noise
  ``all_perturbations``), over the perturbations both runs have. Both FPs of a perturbation are
  taken on the same sequences: those whose image index both runs evaluated (joined on
  ``index``). A zero baseline FP gives NaN, and a NaN FR makes mFR NaN (nothing is silently
  dropped).

Rows: columns noise, level (NaN), metric, value, n. ``n`` is the number of distinct images
behind the value (one sequence per image and perturbation): a perturbation's sequences for
``flip_probability`` / ``flip_rate`` (the shared ones for ``flip_rate``), the images of any
perturbation for ``mean_flip_probability`` / ``mfr`` (never a sum over perturbations).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import numpy as np
import pandas as pd

COLUMNS = ["noise", "level", "metric", "value", "n"]
ALL = "all_perturbations"
REQUIRED = ("perturbation", "index", "frame", "prediction")


def _noise_rule(noise_perturbations: Collection[str] | None) -> Callable[[str], bool]:
    if noise_perturbations is not None:
        names = set(noise_perturbations)
        return lambda p: p in names
    from robustlab.noise.stability import is_noise_perturbation

    return is_noise_perturbation


def _prediction_matrix(group: pd.DataFrame, perturbation: str) -> np.ndarray:
    """Predictions as sequences x frames, after checking every sequence has frames 0..L-1."""
    counts = group.groupby("index", sort=True)["frame"].agg(["size", "min", "max"])
    length = int(counts["size"].iloc[0])
    bad = (counts["size"] != length) | (counts["min"] != 0) | (counts["max"] != length - 1)
    if length < 2 or bad.any():
        first = int(counts.index[int(np.argmax(bad.to_numpy()))])
        raise ValueError(
            f"perturbation outcomes: sequence of image index {first} for {perturbation!r} does "
            f"not have frames 0..L-1 (L >= 2, the same L for every image); rerun stages.perturb "
            "and stages.evaluate"
        )
    ordered = group.sort_values(["index", "frame"], kind="mergesort")
    return ordered["prediction"].to_numpy().reshape(len(counts), length)


def sequence_flips(predictions: np.ndarray, noise: bool) -> np.ndarray:
    """Per-sequence flip share of a sequences x frames prediction array (fractions in [0, 1])."""
    reference = predictions[:, :1] if noise else predictions[:, :-1]
    return (predictions[:, 1:] != reference).mean(axis=1)


def _checked(outcomes: pd.DataFrame) -> pd.DataFrame:
    """``outcomes`` after checking its columns and that no frame appears twice."""
    missing = [c for c in REQUIRED if c not in outcomes.columns]
    if missing:
        raise ValueError(
            f"perturbation outcomes lack column(s) {', '.join(missing)}; they are written by "
            "stages.evaluate from stages.perturb tables"
        )
    dup = outcomes.duplicated(["perturbation", "index", "frame"])
    if dup.any():
        first = outcomes.loc[dup].iloc[0]
        raise ValueError(
            f"perturbation outcomes: image index {first['index']} frame {first['frame']} appears "
            f"twice for {first['perturbation']!r}; rerun stages.evaluate for this run"
        )
    return outcomes


def flip_probabilities(
    outcomes: pd.DataFrame, noise_perturbations: Collection[str] | None = None
) -> pd.DataFrame:
    """FP (percent) and sequence count per perturbation: columns perturbation, fp, n, sorted.

    ``noise_perturbations`` names the noise kinds; by default the perturbation registry decides
    (an unregistered name is an error listing the known ones).
    """
    outcomes = _checked(outcomes)
    is_noise = _noise_rule(noise_perturbations)
    rows = []
    for perturbation, group in outcomes.groupby("perturbation", sort=True):
        name = str(perturbation)
        matrix = _prediction_matrix(group, name)
        flips = sequence_flips(matrix, is_noise(name))
        rows.append((name, 100.0 * float(flips.mean()), len(flips)))
    return pd.DataFrame(rows, columns=["perturbation", "fp", "n"])


def flip_probability_metrics(
    outcomes: pd.DataFrame, noise_perturbations: Collection[str] | None = None
) -> pd.DataFrame:
    """``flip_probability`` per perturbation and ``mean_flip_probability`` (noise
    ``all_perturbations``): columns noise, level, metric, value, n."""
    fp = flip_probabilities(outcomes, noise_perturbations)
    rows: list[tuple[str, float, str, float, int]] = [
        (p, math.nan, "flip_probability", v, int(n)) for p, v, n in fp.itertuples(index=False)
    ]
    if len(fp):
        images = int(outcomes["index"].nunique())
        rows.append((ALL, math.nan, "mean_flip_probability", float(fp["fp"].mean()), images))
    return pd.DataFrame(rows, columns=COLUMNS)


def shared_sequences(
    outcomes: pd.DataFrame, baseline: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' outcomes restricted to the (perturbation, index) sequences both evaluated."""
    keys = ["perturbation", "index"]
    shared = pd.MultiIndex.from_frame(_checked(outcomes)[keys]).intersection(
        pd.MultiIndex.from_frame(_checked(baseline)[keys])
    )

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[pd.MultiIndex.from_frame(frame[keys]).isin(shared)]

    return keep(outcomes), keep(baseline)


def flip_rate_metrics(
    outcomes: pd.DataFrame,
    baseline: pd.DataFrame,
    noise_perturbations: Collection[str] | None = None,
) -> pd.DataFrame:
    """``flip_rate`` per perturbation and ``mfr`` against a baseline run's outcomes, both FPs on
    the sequences both runs have (joined on image index): columns noise, level (NaN), metric,
    value, n (distinct images)."""
    model, base = shared_sequences(outcomes, baseline)
    joined = flip_probabilities(model, noise_perturbations).merge(
        flip_probabilities(base, noise_perturbations), on="perturbation", suffixes=("", "_base")
    )
    rows: list[tuple[str, float, str, float, int]] = []
    rates: list[float] = []
    for p, fp, n, fp_base, _ in joined.itertuples(index=False):
        rate = math.nan if fp_base == 0 else 100.0 * fp / fp_base
        rows.append((str(p), math.nan, "flip_rate", rate, int(n)))
        rates.append(rate)
    if rates:
        mfr = math.nan if any(map(math.isnan, rates)) else sum(rates) / len(rates)
        rows.append((ALL, math.nan, "mfr", mfr, int(model["index"].nunique())))
    return pd.DataFrame(rows, columns=COLUMNS)
