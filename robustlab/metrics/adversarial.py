"""Adversarial metrics from stored per-example outcomes (``adversarial.parquet``).

Definitions follow RobustART's code (notes/papers.md section 1):

- ``robust_accuracy``: percent correct under the attack over all images (n = all images);
- ``ar``: among images whose clean prediction was correct (``clean_prediction == label``), the
  percent still correct under the attack (n = clean-correct images);
- ``asr`` = 100 - ``ar``;
- ``wcar`` per eps: among clean-correct images, the percent correct under *every* attack run at
  that eps (per-image worst case, joined on ``index``; only images evaluated by all of those
  attacks count).

A value with no image behind it is NaN with n = 0.
"""

from __future__ import annotations

import math

import pandas as pd

from robustlab.metrics.accuracy import percent_correct

COLUMNS = ["noise", "level", "metric", "value", "n"]


def _check_unique(adv: pd.DataFrame) -> None:
    dup = adv.duplicated(["attack", "eps", "index"])
    if dup.any():
        first = adv.loc[dup].iloc[0]
        raise ValueError(
            f"adversarial outcomes: image index {first['index']} appears twice for attack "
            f"{first['attack']!r} at eps {first['eps']}; rerun stages.attack for this run"
        )


def attack_metrics(adv: pd.DataFrame) -> pd.DataFrame:
    """Rows ``robust_accuracy``, ``ar``, ``asr`` per (attack, eps): columns noise, level, metric,
    value, n."""
    _check_unique(adv)
    rows: list[tuple[str, float, str, float, int]] = []
    for (attack, eps), group in adv.groupby(["attack", "eps"], sort=True):
        robust, n_all = percent_correct(group["correct"])
        clean_ok = group["clean_prediction"] == group["label"]
        ar, n_ok = percent_correct(group.loc[clean_ok, "correct"])
        asr = math.nan if math.isnan(ar) else 100.0 - ar
        level = float(eps)
        rows += [
            (str(attack), level, "robust_accuracy", robust, n_all),
            (str(attack), level, "ar", ar, n_ok),
            (str(attack), level, "asr", asr, n_ok),
        ]
    return pd.DataFrame(rows, columns=COLUMNS)


def worst_case_metrics(adv: pd.DataFrame) -> pd.DataFrame:
    """Rows ``wcar`` per eps (noise ``all_attacks``): columns noise, level, metric, value, n."""
    _check_unique(adv)
    rows: list[tuple[str, float, str, float, int]] = []
    frame = adv.assign(clean_ok=adv["clean_prediction"] == adv["label"])
    for eps, group in frame.groupby("eps", sort=True):
        n_attacks = group["attack"].nunique()
        per_image = group.groupby("index", sort=True).agg(
            attacks=("attack", "nunique"), clean_ok=("clean_ok", "all"), robust=("correct", "all")
        )
        kept = per_image[(per_image["attacks"] == n_attacks) & per_image["clean_ok"]]
        value, n = percent_correct(kept["robust"])
        rows.append(("all_attacks", float(eps), "wcar", value, n))
    return pd.DataFrame(rows, columns=COLUMNS)
