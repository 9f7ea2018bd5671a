"""Adversarial metrics from stored per-example outcomes (``adversarial.parquet``).

Definitions follow RobustART's code (docs/metrics.md):

- ``robust_accuracy``: percent correct under the attack over all images (n = all images);
- ``ar``: among images whose clean prediction was correct (``clean_prediction == label``), the
  percent still correct under the attack (n = clean-correct images);
- ``asr`` = 100 - ``ar``;
- ``wcar`` per eps level of each norm: among clean-correct images, the percent correct under
  *every* attack of that norm evaluated at that level (per-image worst case, joined on
  ``index``; only images evaluated by all of those attacks count, so an attack run on a subset
  of points restricts n to that subset). Noise ``all_attacks`` for L-inf, ``all_l2_attacks`` /
  ``all_l1_attacks`` for the other norms; ``level`` is that norm's eps. The attacks a WCAR value
  covers are those with ``robust_accuracy`` rows at that (norm, eps) in the same run
  (:func:`wcar_coverage`); a level lacking an attack of that norm that ran at another level is
  *partial* (a warning here, a mark in the report), since its worst case is optimistic;
- ``forward_passes`` / ``backward_passes`` per (attack, eps): model passes in examples the attack
  spent (cost, not accuracy; n = images attacked).

Outcome tables without ``norm``/``level`` columns are read as L-inf with levels by eps.

A value with no image behind it is NaN with n = 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

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
    _warn_partial_levels(frame)
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


def _warn_partial_levels(frame: pd.DataFrame) -> None:
    for norm, of_norm in frame.groupby("norm", sort=True):
        everywhere = set(of_norm["attack"].astype(str))
        for level, group in of_norm.groupby("level", sort=True):
            missing = sorted(everywhere - set(group["attack"].astype(str)))
            if missing:
                warnings.warn(
                    f"WCAR at {norm} level {level} (eps {group['eps'].max():g}) covers "
                    f"{', '.join(sorted(set(group['attack'].astype(str))))} but not "
                    f"{', '.join(missing)}, which ran at other levels: an optimistic worst "
                    "case; run every attack at every level (attacks.<name>.levels: all)",
                    stacklevel=3,
                )


NORM_OF_WCAR = {noise: norm for norm, noise in WCAR_NOISE.items()}
COVERAGE_COLUMNS = ["dataset", "arch", "technique", "noise", "level", "attacks", "missing", "n"]


def wcar_norm(noise: str) -> str:
    """The norm of a WCAR row's noise: ``all_attacks`` -> ``linf``, ``all_l2_attacks`` -> ``l2``."""
    if noise in NORM_OF_WCAR:
        return NORM_OF_WCAR[noise]
    if noise.startswith("all_") and noise.endswith("_attacks"):
        return noise[len("all_") : -len("_attacks")]
    raise ValueError(f"{noise!r} is not a WCAR noise name (e.g. all_attacks, all_l2_attacks)")


def wcar_coverage(metrics: pd.DataFrame, attack_norms: Mapping[str, str]) -> pd.DataFrame:
    """Per ``wcar`` row of a metrics table: the attacks it covers and those it lacks.

    ``attacks``: the attacks of the row's norm with a ``robust_accuracy`` row at the same eps in
    the same run (comma-separated, sorted); ``missing``: attacks of that norm with
    ``robust_accuracy`` rows at other eps of the run but not this one (empty: the level is
    complete); ``n``: the WCAR row's image count. An attack absent from ``attack_norms`` counts
    as L-inf (as outcome tables without a ``norm`` column are read).
    """
    run = ["dataset", "arch", "technique"]
    adv = metrics[metrics["family"] == "adversarial"]
    robust = adv[adv["metric"] == "robust_accuracy"]
    norms = robust["noise"].astype(str).map(lambda a: attack_norms.get(a, "linf").lower())
    robust = robust.assign(norm=norms)
    rows = []
    for row in adv[adv["metric"] == "wcar"].itertuples(index=False):
        norm = wcar_norm(str(row.noise))
        same = robust[
            (robust["dataset"] == row.dataset)
            & (robust["arch"] == row.arch)
            & (robust["technique"] == row.technique)
            & (robust["norm"] == norm)
        ]
        here = sorted(set(same.loc[same["level"] == row.level, "noise"].astype(str)))
        missing = sorted(set(same["noise"].astype(str)) - set(here))
        rows.append(
            (
                str(row.dataset),
                str(row.arch),
                str(row.technique),
                str(row.noise),
                float(row.level),
                ", ".join(here),
                ", ".join(missing),
                int(row.n),
            )
        )
    frame = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    return frame.sort_values([*run, "noise", "level"], kind="mergesort").reset_index(drop=True)
