"""Every comparison sanity check in both directions, on hand-made outcome tables, and the eps-0
and fp32 re-confirmation checks image by image."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustlab.metrics.sanity import (
    SanitySettings,
    fp32_confirmation_rows,
    sanity_rows,
    square_stage_rows,
    unconfirmed_fooled,
)

N = 100
LABELS = np.arange(N) % 10  # 100 images, 10 classes
CLEAN_CORRECT = 90  # images 0-89 are classified correctly, 90-99 wrong


def pred(k: int) -> np.ndarray:
    """Predictions correct on the first ``k`` images, ``label + 1`` on the others."""
    return np.where(np.arange(N) < k, LABELS, (LABELS + 1) % 10)


def outcomes(attack: str, eps: float, prediction, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "attack": attack,
            "norm": "linf",
            "level": np.ones(N, dtype=np.int16),
            "eps": float(eps),
            "index": np.arange(N, dtype=np.int64),
            "label": LABELS.astype(np.int16),
            "clean_prediction": pred(CLEAN_CORRECT).astype(np.int16),
            "prediction": np.asarray(prediction, dtype=np.int16),
            "perturbation": np.full(N, eps),
            "pixel_min": np.zeros(N),
            "pixel_max": np.ones(N),
        }
    )
    frame["correct"] = frame["prediction"] == frame["label"]
    for name, values in columns.items():
        frame[name] = values
    return frame


def clean_frame(prediction=None) -> pd.DataFrame:
    prediction = pred(CLEAN_CORRECT) if prediction is None else prediction
    frame = pd.DataFrame({"index": np.arange(N, dtype=np.int64), "label": LABELS})
    frame["prediction"] = np.asarray(prediction, dtype=np.int16)
    frame["correct"] = frame["prediction"] == frame["label"]
    return frame


MODEL = {"num_classes": 10}


def run(adv, probes=None, transfer=None, stages=None, technique="pgd_at") -> pd.DataFrame:
    probes = probes if probes is not None else outcomes("eps_zero", 0.0, pred(CLEAN_CORRECT))
    return sanity_rows(
        clean_frame(),
        adv,
        probes,
        MODEL,
        transfer,
        ("a", technique),
        "pgd_linf",
        SanitySettings(),
        stages,
    )


def only(frame: pd.DataFrame, check: str) -> pd.Series:
    rows = frame[frame["check"] == check]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def tol(p1: float, p2: float, n: int = N) -> float:
    # two binomial standard errors of the difference plus one image, in points
    return 200 * math.sqrt(p1 / 100 * (1 - p1 / 100) / n + p2 / 100 * (1 - p2 / 100) / n) + 100 / n


# -- more steps and restarts (Carlini et al. 2019: convergence) ---------------------------------


def more_steps(configured: int, stronger: int) -> pd.DataFrame:
    adv = outcomes("pgd_linf", 0.1, pred(configured))
    probes = outcomes("more_steps", 0.1, pred(stronger))
    return run(adv, probes)


def test_more_steps_fails_when_the_configured_attack_had_not_converged() -> None:
    # configured PGD 50 % vs more steps 20 %: the configured attack is 30 points weaker;
    # tolerance = 2 sqrt(.5*.5/100 + .2*.8/100) + 1 image = 2 * 6.403 + 1 = 13.81 points
    row = only(more_steps(50, 20), "more_steps_not_weaker")
    assert not row["passed"]
    assert row["value"] == pytest.approx(30.0)
    assert row["threshold"] == pytest.approx(tol(50, 20)) == pytest.approx(13.806, abs=1e-3)
    assert "50.0 % vs 20.0 %" in row["detail"]


def test_more_steps_passes_when_the_stronger_reference_changes_little() -> None:
    # 22 % as configured vs 20 %: 2 points, inside the tolerance of about 12.5 points
    row = only(more_steps(22, 20), "more_steps_not_weaker")
    assert row["passed"] and row["value"] == pytest.approx(2.0)
    # the reference even higher than the configured attack is no sign of non-convergence
    row = only(more_steps(20, 40), "more_steps_not_weaker")
    assert row["passed"] and row["value"] == pytest.approx(-20.0)


def test_more_steps_compares_the_same_images() -> None:
    # the stronger reference ran on the first 50 images only, where the configured PGD is
    # correct on 40 (80 %) and the reference on 40 as well: no excess, although over all 100
    # images the configured attack has 40 % and the reference 80 %
    adv = outcomes("pgd_linf", 0.1, pred(40))
    probes = outcomes("more_steps", 0.1, pred(40)).iloc[:50]
    row = only(run(adv, probes), "more_steps_not_weaker")
    assert row["passed"] and row["value"] == pytest.approx(0.0)
    assert "on 50 images" in row["detail"]


# -- the other comparisons: the stronger attack's accuracy may not exceed the weaker one's -----


@pytest.mark.parametrize(
    "strong,weak,passed",
    [(20, 40, True), (70, 20, False)],  # PGD 20 % vs FGSM 40 %; PGD 70 % vs FGSM 20 %
)
def test_pgd_vs_fgsm_both_directions(strong: int, weak: int, passed: bool) -> None:
    adv = pd.concat([outcomes("pgd_linf", 0.1, pred(strong)), outcomes("fgsm", 0.1, pred(weak))])
    row = only(run(adv), "pgd_not_weaker_than_fgsm")
    assert bool(row["passed"]) == passed
    assert row["value"] == pytest.approx(strong - weak)


@pytest.mark.parametrize("pgd,noise,passed", [(20, 85, True), (60, 10, False)])
def test_random_noise_vs_pgd_both_directions(pgd: int, noise: int, passed: bool) -> None:
    probes = pd.concat(
        [
            outcomes("eps_zero", 0.0, pred(CLEAN_CORRECT)),
            outcomes("random_noise", 0.1, pred(noise)),
        ]
    )
    row = only(run(outcomes("pgd_linf", 0.1, pred(pgd)), probes), "random_noise_weaker_than_pgd")
    assert bool(row["passed"]) == passed and row["value"] == pytest.approx(pgd - noise)


@pytest.mark.parametrize("small,large,passed", [(50, 20, True), (20, 50, False)])
def test_accuracy_in_eps_both_directions(small: int, large: int, passed: bool) -> None:
    adv = pd.concat(
        [outcomes("pgd_linf", 0.05, pred(small)), outcomes("pgd_linf", 0.1, pred(large))]
    )
    row = only(run(adv), "accuracy_non_increasing_in_eps")
    assert bool(row["passed"]) == passed and row["value"] == pytest.approx(large - small)


@pytest.mark.parametrize("own,transferred,passed", [(20, 60, True), (60, 10, False)])
def test_whitebox_vs_transfer_both_directions(own: int, transferred: int, passed: bool) -> None:
    transfer = outcomes("fgsm", 0.1, pred(transferred)).assign(
        source_arch="b", source_technique="standard"
    )
    row = only(
        run(outcomes("pgd_linf", 0.1, pred(own)), transfer=transfer),
        "whitebox_not_weaker_than_transfer",
    )
    assert bool(row["passed"]) == passed and row["value"] == pytest.approx(own - transferred)


@pytest.mark.parametrize("whitebox,square,passed", [(20, 50, True), (60, 20, False)])
def test_whitebox_vs_square_attack_both_directions(whitebox: int, square: int, passed: bool):
    adv = pd.concat(
        [outcomes("pgd_linf", 0.1, pred(whitebox)), outcomes("square", 0.1, pred(square))]
    )
    row = only(run(adv), "whitebox_not_weaker_than_square")
    assert bool(row["passed"]) == passed and row["value"] == pytest.approx(whitebox - square)
    assert row["threshold"] == pytest.approx(tol(whitebox, square))


def test_an_attack_with_its_own_square_stage_is_not_the_white_box_side() -> None:
    # AutoAttack (0 %) contains Square; the white-box side is PGD (60 %) -> 60 - 20 fails
    adv = pd.concat(
        [
            outcomes("pgd_linf", 0.1, pred(60)),
            outcomes("square", 0.1, pred(20)),
            outcomes("autoattack", 0.1, pred(0)),
        ]
    )
    stages = {"autoattack": ["apgd-ce", "apgd-t", "fab-t", "square"]}
    rows = run(adv, stages=stages)
    row = rows[
        (rows["check"] == "whitebox_not_weaker_than_square")
        & rows["detail"].str.startswith("strongest")
    ].iloc[0]
    assert "pgd_linf" in row["detail"] and not row["passed"]


# -- AutoAttack's own Square stage against its white-box stages ---------------------------------


def autoattack(square_broke: int) -> pd.DataFrame:
    """AutoAttack on the 100 images: clean-correct 0-89; the white-box stages break 0-49
    (apgd-ce 0-29, apgd-t 30-49), Square breaks the next ``square_broke`` images."""
    fooled = np.full(N, "", dtype=object)
    fooled[:30] = "apgd-ce"
    fooled[30:50] = "apgd-t"
    fooled[50 : 50 + square_broke] = "square"
    prediction = np.where(fooled != "", (LABELS + 1) % 10, pred(CLEAN_CORRECT))
    still = prediction == LABELS
    assert still.sum() == 40 - square_broke
    return outcomes("autoattack", 0.1, prediction, fooled_by=fooled, attack_prediction=prediction)


STANDARD = {"autoattack": ["apgd-ce", "apgd-t", "fab-t", "square"]}


def test_square_stage_breaking_many_white_box_survivors_fails() -> None:
    # white-box stages leave 40 of 100; Square breaks 30 of them -> 40 % vs 10 %:
    # excess 30 > 2 sqrt(.4*.6/100 + .1*.9/100) + 1 = 2 * 5.745 + 1 = 12.49 points
    rows = square_stage_rows(autoattack(30), STANDARD, 2.0)
    assert len(rows) == 1
    row = rows[0]
    assert row["check"] == "whitebox_not_weaker_than_square" and not row["passed"]
    assert row["value"] == pytest.approx(30.0)
    assert row["threshold"] == pytest.approx(tol(40, 10)) == pytest.approx(12.489, abs=1e-3)
    assert row["detail"].startswith("autoattack: white-box stages (apgd-ce, apgd-t, fab-t)")


def test_square_stage_breaking_few_white_box_survivors_passes() -> None:
    # Square breaks 2 of the 40 survivors: 40 % vs 38 %, excess 2 points
    (row,) = square_stage_rows(autoattack(2), STANDARD, 2.0)
    assert row["passed"] and row["value"] == pytest.approx(2.0)


def test_square_stage_row_appears_in_the_full_table_and_needs_square_last() -> None:
    adv = pd.concat([outcomes("pgd_linf", 0.1, pred(40)), autoattack(0)])
    rows = run(adv, stages=STANDARD)
    row = only(rows, "whitebox_not_weaker_than_square")
    assert row["passed"] and row["value"] == pytest.approx(0.0)
    # Square in the middle (version plus): the white-box survivors are unknown, no row
    plus = {"autoattack": ["apgd-ce", "square", "apgd-t"]}
    assert square_stage_rows(autoattack(5), plus, 2.0) == []
    # without the stage list (older outcome tables) no row either
    assert "whitebox_not_weaker_than_square" not in set(run(adv)["check"])


# -- eps 0, image by image ---------------------------------------------------------------------


def test_eps_zero_catches_a_flipped_prediction_with_equal_counts() -> None:
    # image 95 is misclassified either way (label 5; clean predicts 6, eps 0 predicts 7): the
    # number of correct images is 90 in both, yet one prediction differs
    zero = pred(CLEAN_CORRECT)
    zero[95] = 7
    row = only(
        run(outcomes("pgd_linf", 0.1, pred(20)), outcomes("eps_zero", 0.0, zero)),
        "eps_zero_reproduces_clean",
    )
    assert not row["passed"] and row["value"] == 1.0 and row["threshold"] == 0.0
    assert "1 of 100 images" in row["detail"] and "90 vs clean 90 correct" in row["detail"]


def test_eps_zero_catches_two_swaps_that_cancel_in_the_count() -> None:
    zero = pred(CLEAN_CORRECT)
    zero[0] = 9  # correct -> wrong (label 0)
    zero[90] = 0  # wrong -> correct (label 0)
    row = only(
        run(outcomes("pgd_linf", 0.1, pred(20)), outcomes("eps_zero", 0.0, zero)),
        "eps_zero_reproduces_clean",
    )
    assert not row["passed"] and row["value"] == 2.0


def test_eps_zero_identical_predictions_pass_and_missing_images_fail() -> None:
    row = only(run(outcomes("pgd_linf", 0.1, pred(20))), "eps_zero_reproduces_clean")
    assert row["passed"] and row["value"] == 0.0
    probes = outcomes("eps_zero", 0.0, pred(CLEAN_CORRECT)).assign(index=np.arange(N) + 1)
    # shifted indices: index i carries the eps-0 prediction of image i - 1, which differs from
    # image i's clean prediction for all 99 shared indices (neighbouring labels differ, and
    # 89 -> 9 vs 90 -> 1); index 100 has no clean outcome: 99 + 1 = 100
    row = only(run(outcomes("pgd_linf", 0.1, pred(20)), probes), "eps_zero_reproduces_clean")
    assert not row["passed"] and row["value"] == 100.0
    assert "1 without a clean outcome" in row["detail"]


# -- fp32 re-confirmation of the examples an attack counted as fooled --------------------------


def test_unconfirmed_fooled_counts_examples_the_fp32_judgement_finds_correct() -> None:
    frame = pd.DataFrame(
        {
            "label": [0, 1, 2, 3, 4],
            # the attack saw: 0 fooled, 1 fooled, 2 correct, 3 correct, 4 correct
            "attack_prediction": [9, 9, 2, 3, 4],
            # AutoAttack named a stage for image 3 (counted as fooled by the stage)
            "fooled_by": ["apgd-ce", "", "", "square", ""],
            # fp32 judgement: 0 fooled (confirmed), 1 correct (mismatch), 3 correct (mismatch)
            "correct": [False, True, True, True, False],
        }
    )
    # counted as fooled: 0, 1, 3 -> 3; of those correct in fp32: 1 and 3 -> 2
    assert unconfirmed_fooled(frame) == (2, 3)
    assert unconfirmed_fooled(frame.drop(columns="fooled_by")) == (1, 2)  # 0 and 1 counted


def test_fp32_confirmation_row_per_attack_passes_only_at_zero() -> None:
    confirmed = outcomes("pgd_linf", 0.1, pred(20), attack_prediction=pred(20))
    seen = pred(40)
    seen[10] = 3  # the attack saw image 10 (label 0) fooled; fp32 classifies it correctly
    mismatch = outcomes("fgsm", 0.1, pred(40), attack_prediction=seen)
    rows = {
        r["detail"].split(":")[0]: r
        for r in fp32_confirmation_rows(pd.concat([confirmed, mismatch]))
    }
    assert rows["pgd_linf"]["passed"] and rows["pgd_linf"]["value"] == 0.0
    assert not rows["fgsm"]["passed"] and rows["fgsm"]["value"] == 1.0
    # 60 images fooled in fp32 (40-99) plus image 10 -> 61 counted as fooled by the attack
    assert "1 of 61 examples" in rows["fgsm"]["detail"]
    assert rows["fgsm"]["check"] == "fooled_confirmed_in_fp32"
    # outcome tables without the column give no row
    assert fp32_confirmation_rows(outcomes("pgd_linf", 0.1, pred(20))) == []
