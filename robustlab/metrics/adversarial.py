"""Adversarial metrics from stored per-example outcomes (``adversarial.parquet``).

Definitions follow RobustART's code (notes/papers.md section 1):

- ``robust_accuracy``: percent correct under the attack over all images (n = all images);
- ``ar``: among images whose clean prediction was correct (``clean_prediction == label``), the
  percent still correct under the attack (n = clean-correct images);
- ``asr`` = 100 - ``ar``;
- ``wcar`` per eps level of each norm: among clean-correct images, the percent correct under
  *every* attack run at that level (per-image worst case, joined on ``index``; only images
  evaluated by all of those attacks count, so an attack run on a subset of points restricts n to
  that subset). Noise ``all_attacks`` for L-inf, ``all_l2_attacks`` / ``all_l1_attacks`` for the
  other norms; ``level`` is that norm's eps;
- ``forward_passes`` / ``backward_passes`` per (attack, eps): model passes in examples the attack
  spent (cost, not accuracy; n = images attacked).

Outcome tables without ``norm``/``level`` columns are read as L-inf with levels by eps.

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


WCAR_NOISE = {"linf": "all_attacks", "l2": "all_l2_attacks", "l1": "all_l1_attacks"}


def cost_metrics(adv: pd.DataFrame) -> pd.DataFrame:
    """Rows ``forward_passes`` / ``backward_passes`` per (attack, eps), where recorded."""
    rows: list[tuple[str, float, str, float, int]] = []
    if "forward_passes" not in adv.columns:
        return pd.DataFrame(rows, columns=COLUMNS)
    for (attack, eps), group in adv.groupby(["attack", "eps"], sort=True):
        for metric in ("forward_passes", "backward_passes"):
            rows.append((str(attack), float(eps), metric, float(group[metric].iloc[0]), len(group)))
    return pd.DataFrame(rows, columns=COLUMNS)


def worst_case_metrics(adv: pd.DataFrame) -> pd.DataFrame:
    """Rows ``wcar`` per (norm, eps level): columns noise, level, metric, value, n."""
    _check_unique(adv)
    rows: list[tuple[str, float, str, float, int]] = []
    frame = adv.assign(clean_ok=adv["clean_prediction"] == adv["label"])
    if "norm" not in frame.columns:
        frame = frame.assign(norm="linf")
    if "level" not in frame.columns:
        frame = frame.assign(level=frame["eps"])
    for (norm, _), group in frame.groupby(["norm", "level"], sort=True):
        eps = group["eps"].max()
        if group["eps"].nunique() > 1:
            raise ValueError(
                f"adversarial outcomes: {norm} attacks at one level use different eps "
                f"({sorted(group['eps'].unique())}); rerun stages.attack with the same budgets"
            )
        n_attacks = group["attack"].nunique()
        per_image = group.groupby("index", sort=True).agg(
            attacks=("attack", "nunique"), clean_ok=("clean_ok", "all"), robust=("correct", "all")
        )
        kept = per_image[(per_image["attacks"] == n_attacks) & per_image["clean_ok"]]
        value, n = percent_correct(kept["robust"])
        noise = WCAR_NOISE.get(str(norm), f"all_{norm}_attacks")
        rows.append((noise, float(eps), "wcar", value, n))
    return pd.DataFrame(rows, columns=COLUMNS)
