"""Evaluation sanity checks computed from stored outcomes (docs/attacks.md, "Sanity probes").

Each check gives one row: ``check`` (name), ``passed`` (bool), ``value`` (the measured number),
``threshold`` (the bound it was held to), ``detail`` (what was compared, in words). A check whose
inputs are absent (no Square run, no transfer sources) gives no row rather than a fake pass.

Comparisons of two accuracies allow for sampling noise: ``tolerance_se`` binomial standard errors
of the difference (sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2), in points) plus one image (100 / n),
so at n = 1000 and p = 0.5 two standard errors are about 2.2 points plus 0.1.
Outcome frames have the columns of ``stages.attack`` (attack, norm, level, eps, index, label,
clean_prediction, prediction, correct, perturbation, pixel_min, pixel_max, and where recorded
attack_prediction and fooled_by).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def _not_above(check: str, subject: pd.DataFrame, than: pd.DataFrame, k: float, what: str) -> dict:
    """Passes when accuracy under ``subject`` exceeds accuracy under ``than`` by at most the
    tolerance, on the images both have. ``value`` is the excess in points (negative when
    ``subject`` is lower); ``what`` names ``subject`` first, the detail gives its accuracy first.
    """
    subject, than = _on_common(subject, than)
    p_subject, n_subject = _acc(subject)
    p_than, n_than = _acc(than)
    excess = p_subject - p_than
    bound = tolerance(p_subject, n_subject, p_than, n_than, k)
    detail = f"{what}: {p_subject:.1f} % vs {p_than:.1f} % on {n_subject} images"
    return _row(check, excess <= bound, excess, bound, detail)


def _per_eps(check: str, subject: pd.DataFrame, than: pd.DataFrame, k: float, what: str) -> list:
    """:func:`_not_above` at every eps both outcome frames have."""
    return [
        _not_above(
            check,
            subject[subject["eps"] == eps],
            than[than["eps"] == eps],
            k,
            f"{what} at eps {eps:g}",
        )
        for eps in sorted(set(subject["eps"]) & set(than["eps"]))
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
                subject=group[group["eps"] == large],
                than=group[group["eps"] == small],
                k=k,
                what=f"{attack} eps {large:g} vs {small:g}",
            )
            if (
                worst is None
                or row["value"] - row["threshold"] > worst["value"] - worst["threshold"]
            ):
                worst = row
        worst["detail"] = f"{attack}: worst step, {worst['detail']}"
        rows.append(worst)
    return rows


def eps_zero_row(zero: pd.DataFrame, clean: pd.DataFrame, reference: str) -> dict:
    """The reference attack at eps 0 gives the clean prediction on every image (compared image
    by image: equal counts of correct images do not hide a flipped prediction). ``value``:
    images whose prediction differs, or that have no clean outcome."""
    merged = zero.merge(clean[["index", "prediction", "correct"]], on="index", suffixes=("", "_c"))
    n = len(zero)
    missing = n - len(merged)
    flipped = int((merged["prediction"] != merged["prediction_c"]).sum()) + missing
    k_zero = int(merged["correct"].astype(bool).sum())
    k_clean = int(merged["correct_c"].astype(bool).sum())
    detail = (
        f"{reference} at eps 0: {flipped} of {n} images predicted differently from the clean "
        f"evaluation ({k_zero} vs clean {k_clean} correct"
        + (f"; {missing} without a clean outcome)" if missing else ")")
    )
    return _row("eps_zero_reproduces_clean", flipped == 0, flipped, 0.0, detail)


def unconfirmed_fooled(frame: pd.DataFrame) -> tuple[int, int]:
    """``(mismatches, fooled)``: examples the attack counted as fooled (its own prediction in
    the crafting settings, ``attack_prediction``, differs from the label, or an AutoAttack stage
    is named in ``fooled_by``) and, of those, the ones the strict fp32 judgement (``correct``)
    still classifies correctly."""
    counted = frame["attack_prediction"] != frame["label"]
    if "fooled_by" in frame:
        counted |= frame["fooled_by"].fillna("").astype(str) != ""
    mismatch = counted & frame["correct"].astype(bool)
    return int(mismatch.sum()), int(counted.sum())


def fp32_confirmation_rows(adv: pd.DataFrame) -> list[dict]:
    """Per attack (all eps): every example counted as fooled is fooled in fp32 (passes at 0)."""
    if "attack_prediction" not in adv:
        return []
    rows = []
    for attack, group in adv.groupby("attack", sort=True):
        group = group[group["attack_prediction"].notna()]
        if group.empty:
            continue
        mismatches, fooled = unconfirmed_fooled(group)
        rows.append(
            _row(
                "fooled_confirmed_in_fp32",
                mismatches == 0,
                mismatches,
                0.0,
                f"{attack}: {mismatches} of {fooled} examples the attack counted as fooled are "
                f"classified correctly by the fp32 evaluation (eval mode, no autocast, no TF32; "
                f"{len(group)} examples, every eps)",
            )
        )
    return rows


def square_stage_rows(
    adv: pd.DataFrame, attack_stages: Mapping[str, Sequence[str]], k: float
) -> list[dict]:
    """AutoAttack's own Square stage against its white-box stages, per eps, on its points.

    Square runs last on the points the white-box stages left standing; the white-box accuracy
    counts the points Square broke as correct. Fails when Square lowers it by more than the
    tolerance (pyautoattack's ``square_beats_white_box`` warning, with a sampling tolerance).
    Only for attacks whose last stage is ``square`` (else the white-box survivors are unknown).
    """
    rows = []
    for attack, stages in sorted(attack_stages.items()):
        stages = list(stages)
        frame = adv[adv["attack"] == attack]
        if len(stages) < 2 or stages[-1] != "square" or frame.empty or "fooled_by" not in frame:
            continue
        by_square = frame["fooled_by"].fillna("").astype(str) == "square"
        whitebox = frame.assign(correct=frame["correct"].astype(bool) | by_square)
        rows += _per_eps(
            "whitebox_not_weaker_than_square",
            whitebox,
            frame,
            k,
            f"{attack}: white-box stages ({', '.join(stages[:-1])}) vs after its square stage",
        )
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
    attack_stages: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """All sanity-check rows of one run ``target = (arch, technique)`` (``SANITY_COLUMNS``).

    ``attack_stages``: the stages of the attacks made of stages (AutoAttack), in the order
    they ran, e.g. ``{"autoattack": ["apgd-ce", "apgd-t", "fab-t", "square"]}``.
    """
    k = settings.tolerance_se
    technique = target[1]
    attack_stages = attack_stages or {}
    rows: list[dict] = []
    ref = adv[adv["attack"] == reference]
    largest = float(ref["eps"].max()) if len(ref) else math.nan

    zero = probes[probes["attack"] == "eps_zero"]
    if len(zero):
        rows.append(eps_zero_row(zero, clean, reference))
    rows += budget_rows(pd.concat([adv, probes], ignore_index=True))
    rows += monotone_rows(adv, k)
    rows += fp32_confirmation_rows(adv)

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
    rows += _per_eps("pgd_not_weaker_than_fgsm", ref, fgsm, k, f"{reference} vs fgsm")
    stronger = probes[probes["attack"] == "more_steps"]
    if len(stronger) and len(ref):
        # Carlini et al. 2019: if more iterations and restarts lower the accuracy beyond
        # sampling noise, the configured attack had not converged
        eps = float(stronger["eps"].iloc[0])
        rows.append(
            _not_above(
                "more_steps_not_weaker",
                subject=ref[ref["eps"] == eps],
                than=stronger,
                k=k,
                what=f"{reference} as configured vs with more steps and restarts, eps {eps:g}",
            )
        )
    square = adv[adv["attack"] == "square"]
    if len(square):
        # attacks with a Square stage of their own are not white-box
        whitebox = adv[
            (adv["norm"] == square["norm"].iloc[0])
            & (adv["attack"] != "square")
            & ~adv["attack"].isin([a for a, s in attack_stages.items() if "square" in s])
        ]
        for eps in sorted(set(square["eps"]) & set(whitebox["eps"])):
            at = whitebox[whitebox["eps"] == eps]
            best = min(
                (g for _, g in at.groupby("attack")),
                key=lambda g: _acc(_on_common(g, square)[0])[0],
            )
            rows.append(
                _not_above(
                    "whitebox_not_weaker_than_square",
                    subject=best,
                    than=square[square["eps"] == eps],
                    k=k,
                    what=f"strongest white-box ({best['attack'].iloc[0]}) vs square at eps {eps:g}",
                )
            )
    rows += square_stage_rows(adv, attack_stages, k)
    if transfer is not None and len(transfer) and len(ref):
        others = transfer[
            (transfer["source_arch"] != target[0]) | (transfer["source_technique"] != target[1])
        ]
        rows += _transfer_rows(ref, others, reference, k)
    noise = probes[probes["attack"] == "random_noise"]
    rows += _per_eps("random_noise_weaker_than_pgd", ref, noise, k, f"{reference} vs uniform noise")
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
                subject=own,
                than=source,
                k=k,
                what=f"white-box {reference} vs {attack} transferred from {arch}/{technique}, "
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
