"""Evaluation sanity checks computed from stored outcomes (docs/attacks.md, "Sanity probes").

Each check gives one row: ``check`` (name), ``passed`` (bool), ``value`` (the measured number),
``threshold`` (the bound it was held to), ``detail`` (what was compared, in words). A check whose
inputs are absent (no Square run, no transfer sources) gives no row rather than a fake pass.

Comparisons of two accuracies allow for sampling noise: ``tolerance_se`` binomial standard errors
of the difference (sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2), in points) plus one image (100 / n),
so at n = 1000 and p = 0.5 two standard errors are about 2.2 points plus 0.1.
Outcome frames have the columns of ``stages.attack`` (attack, norm, level, eps, index, label,
clean_prediction, prediction, correct, perturbation, pixel_min, pixel_max).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

SANITY_COLUMNS = ["check", "passed", "value", "threshold", "detail"]
BUDGET_TOLERANCE = 1e-5  # float32 rounding of x + delta, relative to max(1, eps)


@dataclass(frozen=True)
class SanitySettings:
    """Bounds of the checks (params.yaml ``sanity:``)."""

    tolerance_se: float = 2.0
    large_eps: float = 0.5
    standard_max_accuracy: float = 10.0
    max_zero_gradient_share: float = 0.0


def _acc(frame: pd.DataFrame) -> tuple[float, int]:
    n = len(frame)
    return (100.0 * float(frame["correct"].astype(bool).sum()) / n, n) if n else (math.nan, 0)


def tolerance(p1: float, n1: int, p2: float, n2: int, k: float) -> float:
    """Allowed excess of one accuracy over another (points): k standard errors plus one image."""
    q1, q2 = p1 / 100.0, p2 / 100.0
    se = math.sqrt(q1 * (1 - q1) / max(n1, 1) + q2 * (1 - q2) / max(n2, 1))
    return 100.0 * k * se + 100.0 / max(min(n1, n2), 1)


def _on_common(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    common = set(a["index"]) & set(b["index"])
    return a[a["index"].isin(common)], b[b["index"].isin(common)]


def _row(check: str, passed: bool, value: float, threshold: float, detail: str) -> dict:
    return {
        "check": check,
        "passed": bool(passed),
        "value": float(value),
        "threshold": float(threshold),
        "detail": detail,
    }


def _not_above(check: str, weak: pd.DataFrame, strong: pd.DataFrame, k: float, what: str) -> dict:
    """Passes when accuracy under ``strong`` exceeds accuracy under ``weak`` by <= the tolerance."""
    weak, strong = _on_common(weak, strong)
    p_weak, n_weak = _acc(weak)
    p_strong, n_strong = _acc(strong)
    excess = p_strong - p_weak
    bound = tolerance(p_strong, n_strong, p_weak, n_weak, k)
    detail = f"{what}: {p_strong:.1f} % vs {p_weak:.1f} % on {n_strong} images"
    return _row(check, excess <= bound, excess, bound, detail)


def _per_eps(check: str, weak: pd.DataFrame, strong: pd.DataFrame, k: float, what: str) -> list:
    """:func:`_not_above` at every eps both outcome frames have."""
    return [
        _not_above(
            check,
            weak[weak["eps"] == eps],
            strong[strong["eps"] == eps],
            k,
            f"{what} at eps {eps:g}",
        )
        for eps in sorted(set(weak["eps"]) & set(strong["eps"]))
    ]


def budget_rows(adv: pd.DataFrame) -> list[dict]:
    """Every (attack, eps) stays inside its budget and every adversarial pixel in [0, 1]."""
    if adv.empty:
        return []
    excess = (adv["perturbation"] - adv["eps"]) / adv["eps"].clip(lower=1.0)
    worst = adv.loc[excess.idxmax()]
    rows = [
        _row(
            "budget_respected",
            float(excess.max()) <= BUDGET_TOLERANCE,
            float(excess.max()),
            BUDGET_TOLERANCE,
            f"largest perturbation over budget (relative): {worst['attack']} at eps "
            f"{worst['eps']:g} ({worst['norm']}), {len(adv)} examples",
        )
    ]
    violation = max(float(-adv["pixel_min"].min()), float(adv["pixel_max"].max() - 1.0), 0.0)
    rows.append(
        _row(
            "pixel_range",
            violation == 0.0,
            violation,
            0.0,
            f"adversarial pixels in [{adv['pixel_min'].min():.4g}, {adv['pixel_max'].max():.4g}]",
        )
    )
    return rows


def monotone_rows(adv: pd.DataFrame, k: float) -> list[dict]:
    """Per attack: accuracy does not rise from one eps to the next larger one."""
    rows = []
    for attack, group in adv.groupby("attack", sort=True):
        levels = sorted(group["eps"].unique())
        if len(levels) < 2:
            continue
        worst = None
        for small, large in zip(levels, levels[1:], strict=False):
            row = _not_above(
                "accuracy_non_increasing_in_eps",
                group[group["eps"] == small],
                group[group["eps"] == large],
                k,
                f"{attack} eps {large:g} vs {small:g}",
            )
            if (
                worst is None
                or row["value"] - row["threshold"] > worst["value"] - worst["threshold"]
            ):
                worst = row
        worst["detail"] = f"{attack}: worst step, {worst['detail']}"
        rows.append(worst)
    return rows


def sanity_rows(
    clean: pd.DataFrame,
    adv: pd.DataFrame,
    probes: pd.DataFrame,
    model_probes: Mapping[str, Any],
    transfer: pd.DataFrame | None,
    target: tuple[str, str],
    reference: str,
    settings: SanitySettings,
) -> pd.DataFrame:
    """All sanity-check rows of one run ``target = (arch, technique)`` (``SANITY_COLUMNS``)."""
    k = settings.tolerance_se
    technique = target[1]
    rows: list[dict] = []
    ref = adv[adv["attack"] == reference]
    largest = float(ref["eps"].max()) if len(ref) else math.nan

    zero = probes[probes["attack"] == "eps_zero"]
    if len(zero):
        merged = zero.merge(clean[["index", "correct"]], on="index", suffixes=("", "_clean"))
        n = len(merged)
        k_zero = int(merged["correct"].astype(bool).sum())
        k_clean = int(merged["correct_clean"].astype(bool).sum())
        rows.append(
            _row(
                "eps_zero_reproduces_clean",
                k_zero == k_clean,
                100.0 * abs(k_zero - k_clean) / max(n, 1),
                0.0,
                f"{reference} at eps 0: {k_zero} vs clean {k_clean} of {n} images correct",
            )
        )
    rows += budget_rows(pd.concat([adv, probes], ignore_index=True))
    rows += monotone_rows(adv, k)

    large = probes[probes["attack"] == "large_eps"]
    if len(large):
        chance = 100.0 / int(model_probes["num_classes"])
        p, n = _acc(large)
        bound = chance + 100.0 * k * math.sqrt(chance / 100 * (1 - chance / 100) / n) + 100.0 / n
        rows.append(
            _row(
                "large_eps_reaches_chance",
                p <= bound,
                p,
                bound,
                f"{reference} at eps {large['eps'].iloc[0]:g}: {p:.1f} % on {n} images "
                f"(chance {chance:.1f} %)",
            )
        )
    fgsm = adv[adv["attack"] == "fgsm"]
    rows += _per_eps("pgd_not_weaker_than_fgsm", fgsm, ref, k, f"{reference} vs fgsm")
    stronger = probes[probes["attack"] == "more_steps"]
    if len(stronger) and len(ref):
        eps = float(stronger["eps"].iloc[0])
        rows.append(
            _not_above(
                "more_steps_not_weaker",
                ref[ref["eps"] == eps],
                stronger,
                k,
                f"{reference} with more steps and restarts vs as configured, eps {eps:g}",
            )
        )
    square = adv[adv["attack"] == "square"]
    if len(square):
        whitebox = adv[(adv["norm"] == square["norm"].iloc[0]) & (adv["attack"] != "square")]
        for eps in sorted(set(square["eps"]) & set(whitebox["eps"])):
            at = whitebox[whitebox["eps"] == eps]
            best = min(
                (g for _, g in at.groupby("attack")),
                key=lambda g: _acc(_on_common(g, square)[0])[0],
            )
            rows.append(
                _not_above(
                    "whitebox_not_weaker_than_square",
                    square[square["eps"] == eps],
                    best,
                    k,
                    f"strongest white-box ({best['attack'].iloc[0]}) vs square at eps {eps:g}",
                )
            )
    if transfer is not None and len(transfer) and len(ref):
        others = transfer[
            (transfer["source_arch"] != target[0]) | (transfer["source_technique"] != target[1])
        ]
        rows += _transfer_rows(ref, others, reference, k)
    noise = probes[probes["attack"] == "random_noise"]
    rows += _per_eps("random_noise_weaker_than_pgd", noise, ref, k, f"{reference} vs uniform noise")
    rows += _model_rows(model_probes, settings)
    if technique == "standard" and len(ref):
        p, n = _acc(ref[ref["eps"] == largest])
        rows.append(
            _row(
                "standard_model_broken_by_pgd",
                p <= settings.standard_max_accuracy,
                p,
                settings.standard_max_accuracy,
                f"standard training under {reference} at eps {largest:g}: {p:.1f} % on {n} "
                "images (a higher value points at a broken attack or masked gradients)",
            )
        )
    return pd.DataFrame(rows, columns=SANITY_COLUMNS)


def _transfer_rows(ref: pd.DataFrame, transfer: pd.DataFrame, reference: str, k: float) -> list:
    rows = []
    for (attack, eps), group in transfer.groupby(["attack", "eps"], sort=True):
        own = ref[ref["eps"] == eps]
        if own.empty:
            continue
        worst = None
        for (arch, technique), source in group.groupby(["source_arch", "source_technique"]):
            row = _not_above(
                "whitebox_not_weaker_than_transfer",
                source,
                own,
                k,
                f"white-box {reference} vs {attack} transferred from {arch}/{technique}, "
                f"eps {eps:g}",
            )
            if (
                worst is None
                or row["value"] - row["threshold"] > worst["value"] - worst["threshold"]
            ):
                worst = row
        if worst is not None:
            rows.append(worst)
    return rows


def _model_rows(model_probes: Mapping[str, Any], settings: SanitySettings) -> list[dict]:
    rows = []
    if "zero_gradient_share" in model_probes:
        share = 100.0 * float(model_probes["zero_gradient_share"])
        rows.append(
            _row(
                "no_zero_input_gradients",
                share <= 100.0 * settings.max_zero_gradient_share,
                share,
                100.0 * settings.max_zero_gradient_share,
                f"{share:.1f} % of images have an all-zero input gradient of the loss",
            )
        )
    if "deterministic" in model_probes:
        same = bool(model_probes["deterministic"])
        rows.append(
            _row(
                "deterministic_forward",
                same,
                float(same),
                1.0,
                "two forward passes of the same batch give identical logits"
                if same
                else "two forward passes of the same batch differ (randomised defence?)",
            )
        )
    if "logits" in model_probes:
        logits = bool(model_probes["logits"])
        rows.append(
            _row(
                "outputs_are_logits",
                logits,
                float(logits),
                1.0,
                "outputs are logits" if logits else "outputs look like probabilities (softmax)",
            )
        )
    if "autoattack_flags" in model_probes:
        flags = list(model_probes["autoattack_flags"])
        rows.append(
            _row(
                "autoattack_flags",
                not flags,
                float(len(flags)),
                0.0,
                "; ".join(flags) if flags else "pyautoattack raised no flag",
            )
        )
    return rows
