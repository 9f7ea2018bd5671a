"""Natural-corruption metrics from stored per-example outcomes (``natural.parquet``).

Definitions (notes/papers.md section 1), errors E in percent:

- ``accuracy`` per (corruption, severity);
- mean corruption ``accuracy``: mean over the (corruption, severity) cells;
- ``mce_unnormalised``: mean over corruptions and severities of E (RobustART's code);
- ``ce`` per corruption c: 100 * sum_s E_model,s,c / sum_s E_base,s,c, and ``mce`` = mean_c ce
  (Hendrycks & Dietterich, with a baseline run from the same grid instead of AlexNet);
- ``relative_ce``: 100 * sum_s (E_model,s,c - E_model,clean) / sum_s (E_base,s,c - E_base,clean),
  and ``relative_mce`` = mean_c relative_ce.

Normalised values use the (corruption, severity) cells both runs have; a zero denominator gives
NaN, and a NaN ``ce`` makes ``mce`` NaN (nothing is silently dropped).
"""

from __future__ import annotations

import math

import pandas as pd

COLUMNS = ["noise", "level", "metric", "value", "n"]
ALL = "all_corruptions"


def _ratio(num: float, den: float) -> float:
    return math.nan if den == 0 or math.isnan(den) or math.isnan(num) else 100.0 * num / den


def cell_accuracy(natural: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and error (percent) and image count per (corruption, severity), sorted."""
    dup = natural.duplicated(["corruption", "severity", "index"])
    if dup.any():
        first = natural.loc[dup].iloc[0]
        raise ValueError(
            f"natural outcomes: image index {first['index']} appears twice for corruption "
            f"{first['corruption']!r} at severity {first['severity']}; rerun "
            "stages.evaluate for this run"
        )
    cells = (
        natural.groupby(["corruption", "severity"], sort=True)["correct"]
        .agg(correct="sum", n="size")
        .reset_index()
    )
    cells["corruption"] = cells["corruption"].astype(str)
    cells["severity"] = cells["severity"].astype("float64")
    cells["accuracy"] = 100.0 * cells["correct"].astype("float64") / cells["n"]
    cells["error"] = 100.0 - cells["accuracy"]
    return cells[["corruption", "severity", "accuracy", "error", "n"]]


def corruption_metrics(natural: pd.DataFrame) -> pd.DataFrame:
    """Per-cell ``accuracy`` rows plus mean corruption ``accuracy`` and ``mce_unnormalised``
    (noise ``all_corruptions``, level NaN): columns noise, level, metric, value, n."""
    cells = cell_accuracy(natural)
    rows: list[tuple[str, float, str, float, int]] = [
        (c, s, "accuracy", a, int(n))
        for c, s, a, n in cells[["corruption", "severity", "accuracy", "n"]].itertuples(index=False)
    ]
    if len(cells):
        total = int(cells["n"].sum())
        mean_acc = float(cells["accuracy"].mean())
        rows += [
            (ALL, math.nan, "accuracy", mean_acc, total),
            (ALL, math.nan, "mce_unnormalised", float(cells["error"].mean()), total),
        ]
    return pd.DataFrame(rows, columns=COLUMNS)


def normalised_metrics(
    natural: pd.DataFrame,
    clean_accuracy: float,
    baseline_natural: pd.DataFrame,
    baseline_clean_accuracy: float,
) -> pd.DataFrame:
    """``ce`` and ``relative_ce`` per corruption, ``mce`` and ``relative_mce`` against a baseline
    run: columns noise, level (NaN), metric, value, n (the model's images behind the value)."""
    joined = cell_accuracy(natural).merge(
        cell_accuracy(baseline_natural), on=["corruption", "severity"], suffixes=("", "_base")
    )
    clean_err = 100.0 - clean_accuracy
    base_clean_err = 100.0 - baseline_clean_accuracy
    rows: list[tuple[str, float, str, float, int]] = []
    ces: list[float] = []
    rels: list[float] = []
    for corruption, g in joined.groupby("corruption", sort=True):
        ce = _ratio(g["error"].sum(skipna=False), g["error_base"].sum(skipna=False))
        rel = _ratio(
            (g["error"] - clean_err).sum(skipna=False),
            (g["error_base"] - base_clean_err).sum(skipna=False),
        )
        n = int(g["n"].sum())
        rows += [
            (str(corruption), math.nan, "ce", ce, n),
            (str(corruption), math.nan, "relative_ce", rel, n),
        ]
        ces.append(ce)
        rels.append(rel)
    if ces:
        total = int(joined["n"].sum())
        mce = math.nan if any(map(math.isnan, ces)) else sum(ces) / len(ces)
        rmce = math.nan if any(map(math.isnan, rels)) else sum(rels) / len(rels)
        rows += [(ALL, math.nan, "mce", mce, total), (ALL, math.nan, "relative_mce", rmce, total)]
    return pd.DataFrame(rows, columns=COLUMNS)
