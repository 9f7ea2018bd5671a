"""System-noise (ImageNet-S) metrics from stored per-example outcomes (``system.parquet``).

- ``accuracy`` per variant (noise = variant name, e.g. ``pil-pil_bilinear``; n = images);
- ``mean_accuracy`` and ``std_accuracy`` over the variants present (noise ``all_variants``);
  the standard deviation is the *population* one (divide by the number of variants, NumPy's
  default ``ddof=0``), as RobustART's ImageNet-S evaluator computes it with ``np.std``;
- ``nsd`` = -``std_accuracy``, so that higher is better like every other robustness score.

Accuracies in percent; rows: columns noise, level (NaN), metric, value, n. ``n`` is the number
of distinct images behind the value: a variant's images for ``accuracy``, the images of any
variant for the ``all_variants`` rows (never a sum over variants).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

COLUMNS = ["noise", "level", "metric", "value", "n"]
ALL = "all_variants"
REQUIRED = ("variant", "index", "correct")


def variant_accuracy(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (percent) and image count per variant: columns variant, accuracy, n, sorted."""
    missing = [c for c in REQUIRED if c not in outcomes.columns]
    if missing:
        raise ValueError(
            f"system-noise outcomes lack column(s) {', '.join(missing)}; they are written by "
            "stages.evaluate from a stages.system_noise table"
        )
    dup = outcomes.duplicated(["variant", "index"])
    if dup.any():
        first = outcomes.loc[dup].iloc[0]
        raise ValueError(
            f"system-noise outcomes: image index {first['index']} appears twice for variant "
            f"{first['variant']!r}; rerun stages.evaluate for this run"
        )
    cells = (
        outcomes.groupby("variant", sort=True)["correct"].agg(correct="sum", n="size").reset_index()
    )
    cells["variant"] = cells["variant"].astype(str)
    cells["accuracy"] = 100.0 * cells["correct"].astype("float64") / cells["n"]
    return cells[["variant", "accuracy", "n"]]


def population_std(values: np.ndarray) -> float:
    """Standard deviation dividing by the number of values (ddof 0); NaN for no values."""
    values = np.asarray(values, dtype=np.float64)
    return math.nan if len(values) == 0 else float(np.sqrt(np.mean((values - values.mean()) ** 2)))


def system_metrics(outcomes: pd.DataFrame) -> pd.DataFrame:
    """``accuracy`` per variant plus ``mean_accuracy``, ``std_accuracy`` and ``nsd`` (noise
    ``all_variants``): columns noise, level, metric, value, n."""
    cells = variant_accuracy(outcomes)
    rows: list[tuple[str, float, str, float, int]] = [
        (v, math.nan, "accuracy", float(a), int(n)) for v, a, n in cells.itertuples(index=False)
    ]
    if len(cells):
        acc = cells["accuracy"].to_numpy()
        std = population_std(acc)
        total = int(outcomes["index"].nunique())
        rows += [
            (ALL, math.nan, "mean_accuracy", float(acc.mean()), total),
            (ALL, math.nan, "std_accuracy", std, total),
            (ALL, math.nan, "nsd", -std, total),
        ]
    return pd.DataFrame(rows, columns=COLUMNS)
