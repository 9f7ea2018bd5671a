"""Clean top-1 accuracy from stored per-example outcomes (``clean.parquet``)."""

from __future__ import annotations

import math

import pandas as pd


def percent_correct(correct: pd.Series) -> tuple[float, int]:
    """Percent of true values in a boolean series and its length; NaN with n=0 when empty."""
    n = len(correct)
    if n == 0:
        return math.nan, 0
    return 100.0 * float(correct.astype(bool).sum()) / n, n


def clean_accuracy(clean: pd.DataFrame) -> tuple[float, int]:
    """Top-1 accuracy in percent over all rows of a ``clean.parquet`` frame, and the image count."""
    return percent_correct(clean["correct"])
