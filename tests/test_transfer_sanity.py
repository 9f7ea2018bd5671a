"""Transfer ASR and the evaluation sanity checks on hand-computed outcome tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustlab.metrics.adversarial import cost_metrics, worst_case_metrics
from robustlab.metrics.sanity import SanitySettings, sanity_rows, tolerance
from robustlab.metrics.transfer import finalize_transfer, transfer_asr


def outcomes(attack: str, eps: float, labels, clean, prediction, norm="linf", level=1, **extra):
    n = len(labels)
    frame = pd.DataFrame(
        {
            "attack": attack,
            "norm": norm,
            "level": np.full(n, level, dtype=np.int16),
            "eps": float(eps),
            "index": np.arange(n, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int16),
            "clean_prediction": np.asarray(clean, dtype=np.int16),
            "prediction": np.asarray(prediction, dtype=np.int16),
            "perturbation": extra.get("perturbation", np.full(n, eps)),
            "pixel_min": extra.get("pixel_min", np.zeros(n)),
            "pixel_max": extra.get("pixel_max", np.ones(n)),
            "forward_passes": np.full(n, extra.get("forward", 0), dtype=np.int64),
            "backward_passes": np.full(n, extra.get("backward", 0), dtype=np.int64),
        }
    )
    frame["correct"] = frame["prediction"] == frame["label"]
    return frame


def clean_frame(labels, prediction):
    frame = pd.DataFrame(
        {
            "index": np.arange(len(labels), dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int16),
            "prediction": np.asarray(prediction, dtype=np.int16),
        }
    )
    frame["correct"] = frame["prediction"] == frame["label"]
    return frame


def test_transfer_asr_counts_only_images_both_models_classify_correctly() -> None:
    labels = [0, 1, 2, 3, 4]
    # source correct on 0-3; target correct on 0, 1, 2, 4 -> both correct on 0, 1, 2
    transfer = pd.DataFrame(
        {
            "source_arch": "a",
            "source_technique": "standard",
            "attack": "fgsm",
            "level": np.full(5, 3, dtype=np.int16),
            "eps": 0.1,
            "index": np.arange(5, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int16),
            "source_clean_prediction": np.asarray([0, 1, 2, 3, 9], dtype=np.int16),
            # the example of image 1 fools the target, image 3 (target wrong) and 4 (source
            # wrong) are not counted whatever happens to them
            "prediction": np.asarray([0, 7, 2, 7, 7], dtype=np.int16),
        }
    )
    transfer["correct"] = transfer["prediction"] == transfer["label"]
    target_clean = clean_frame(labels, [0, 1, 2, 9, 4])
    rows = transfer_asr("fmnist", "b", "pgd_at", transfer, target_clean)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["asr"] == pytest.approx(100 / 3) and row["n"] == 3
    assert (row["source_arch"], row["target_arch"], row["target_technique"]) == ("a", "b", "pgd_at")
    table = finalize_transfer([rows])
    assert str(table["n"].dtype) == "int64" and str(table["eps"].dtype) == "float64"


def test_transfer_asr_rejects_images_missing_from_the_target() -> None:
    transfer = pd.DataFrame(
        {
            "source_arch": ["a"],
            "source_technique": ["standard"],
            "attack": ["fgsm"],
            "eps": [0.1],
            "index": [99],
            "label": [0],
            "source_clean_prediction": [0],
            "prediction": [0],
            "correct": [True],
        }
    )
    with pytest.raises(ValueError, match="index 99"):
        transfer_asr("d", "b", "t", transfer, clean_frame([0], [0]))


def test_wcar_groups_by_norm_and_level() -> None:
    labels = [0, 1, 2, 3]
    clean = [0, 1, 2, 3]
    adv = pd.concat(
        [
            outcomes("pgd_linf", 0.1, labels, clean, [0, 1, 9, 9], level=3),
            outcomes("fgsm", 0.1, labels, clean, [0, 9, 2, 9], level=3),
            outcomes("pgd_l2", 2.0, labels, clean, [0, 1, 2, 9], norm="l2", level=3),
        ]
    )
    rows = {(r.noise, r.level): (r.value, r.n) for r in worst_case_metrics(adv).itertuples()}
    assert rows[("all_attacks", 0.1)] == (25.0, 4)  # only image 0 survives both L-inf attacks
    assert rows[("all_l2_attacks", 2.0)] == (75.0, 4)


def test_cost_metrics_report_the_recorded_pass_counts() -> None:
    adv = outcomes("pgd_linf", 0.1, [0, 1], [0, 1], [0, 1], forward=40, backward=20)
    rows = {r.metric: (r.value, r.n) for r in cost_metrics(adv).itertuples()}
    assert rows == {"forward_passes": (40.0, 2), "backward_passes": (20.0, 2)}


def test_tolerance_is_two_standard_errors_plus_one_image() -> None:
    # p = 50 % on 100 images each: se = sqrt(2 * 0.25 / 100) = 0.0707 -> 14.14 + 1 points
    assert tolerance(50.0, 100, 50.0, 100, 2.0) == pytest.approx(100 * 2 * math.sqrt(0.005) + 1)


LABELS = list(range(10)) * 10  # 100 images, 10 classes


def healthy_run(pgd_correct: int = 20, fgsm_correct: int = 40, noise_correct: int = 90):
    """Outcomes of a model with 90 % clean accuracy whose evaluation is sound."""
    n = len(LABELS)
    clean_pred = [lab if i < 90 else (lab + 1) % 10 for i, lab in enumerate(LABELS)]

    def pred(k):
        return [lab if i < k else (lab + 1) % 10 for i, lab in enumerate(LABELS)]

    adv = pd.concat(
        [
            outcomes("fgsm", 0.05, LABELS, clean_pred, pred(60), level=1),
            outcomes("fgsm", 0.1, LABELS, clean_pred, pred(fgsm_correct), level=2),
            outcomes("pgd_linf", 0.05, LABELS, clean_pred, pred(50), level=1),
            outcomes("pgd_linf", 0.1, LABELS, clean_pred, pred(pgd_correct), level=2),
        ],
        ignore_index=True,
    )
    probes = pd.concat(
        [
            outcomes("eps_zero", 0.0, LABELS, clean_pred, clean_pred, level=0),
            outcomes("large_eps", 0.5, LABELS, clean_pred, pred(0), level=0),
            outcomes("more_steps", 0.1, LABELS, clean_pred, pred(pgd_correct - 2), level=0),
            outcomes("random_noise", 0.1, LABELS, clean_pred, pred(noise_correct), level=0),
        ],
        ignore_index=True,
    )
    model = {"num_classes": 10, "zero_gradient_share": 0.0, "deterministic": True, "logits": True}
    return clean_frame(LABELS, clean_pred), adv, probes, model, n


DEFAULT_SETTINGS = SanitySettings()


def checks(*args, technique="pgd_at", transfer=None, settings=DEFAULT_SETTINGS):
    clean, adv, probes, model, _ = args
    frame = sanity_rows(clean, adv, probes, model, transfer, ("a", technique), "pgd_linf", settings)
    return {(r.check, r.detail): r for r in frame.itertuples()}, frame


def test_a_sound_evaluation_passes_every_check() -> None:
    rows, frame = checks(*healthy_run())
    assert frame["passed"].all(), frame[~frame["passed"]]
    names = set(frame["check"])
    assert {
        "eps_zero_reproduces_clean",
        "budget_respected",
        "pixel_range",
        "accuracy_non_increasing_in_eps",
        "large_eps_reaches_chance",
        "pgd_not_weaker_than_fgsm",
        "more_steps_not_weaker",
        "random_noise_weaker_than_pgd",
        "no_zero_input_gradients",
        "deterministic_forward",
        "outputs_are_logits",
    } <= names


def test_pgd_much_weaker_than_fgsm_fails_the_check() -> None:
    # PGD leaves 70 correct, FGSM 20: the excess of 50 points is far beyond 2 SE + 1 image
    _, frame = checks(*healthy_run(pgd_correct=70, fgsm_correct=20))
    failed = set(frame.loc[~frame["passed"], "check"])
    assert "pgd_not_weaker_than_fgsm" in failed
    row = frame[(frame["check"] == "pgd_not_weaker_than_fgsm") & ~frame["passed"]].iloc[0]
    assert row["value"] == pytest.approx(50.0)
    assert row["threshold"] == pytest.approx(tolerance(70.0, 100, 20.0, 100, 2.0))


def test_budget_violation_and_pixel_range_are_reported() -> None:
    clean, adv, probes, model, n = healthy_run()
    adv.loc[0, "perturbation"] = adv.loc[0, "eps"] + 0.01
    adv.loc[1, "pixel_max"] = 1.2
    _, frame = checks(clean, adv, probes, model, n)
    failed = frame.loc[~frame["passed"]].set_index("check")
    assert failed.loc["budget_respected", "value"] == pytest.approx(0.01)
    assert failed.loc["pixel_range", "value"] == pytest.approx(0.2)


def test_standard_model_must_break_under_pgd() -> None:
    _, frame = checks(*healthy_run(pgd_correct=20), technique="standard")
    row = frame[frame["check"] == "standard_model_broken_by_pgd"].iloc[0]
    assert not row["passed"] and row["value"] == pytest.approx(20.0)
    _, frame = checks(*healthy_run(pgd_correct=5, fgsm_correct=5), technique="standard")
    assert frame[frame["check"] == "standard_model_broken_by_pgd"]["passed"].all()


def test_model_level_failures_show_up() -> None:
    clean, adv, probes, _, n = healthy_run()
    model = {
        "num_classes": 10,
        "zero_gradient_share": 0.25,
        "deterministic": False,
        "logits": False,
        "autoattack_flags": ["the model output looks like probabilities"],
    }
    _, frame = checks(clean, adv, probes, model, n)
    failed = set(frame.loc[~frame["passed"], "check"])
    assert failed == {
        "no_zero_input_gradients",
        "deterministic_forward",
        "outputs_are_logits",
        "autoattack_flags",
    }


def test_transfer_stronger_than_whitebox_fails() -> None:
    clean, adv, probes, model, n = healthy_run(pgd_correct=60, fgsm_correct=70, noise_correct=90)
    fooled = [(lab + 1) % 10 for lab in LABELS]
    transfer = outcomes("fgsm", 0.1, LABELS, clean["prediction"], fooled)  # fools everything
    transfer = transfer.assign(
        source_arch="b", source_technique="standard", source_clean_prediction=clean["prediction"]
    )
    rows, frame = checks(clean, adv, probes, model, n, transfer=transfer)
    row = frame[frame["check"] == "whitebox_not_weaker_than_transfer"].iloc[0]
    assert not row["passed"] and row["value"] == pytest.approx(60.0)
    # the target's own examples (the diagonal) are white-box, not transfer: no row from them
    own = transfer.assign(source_arch="a", source_technique="pgd_at")
    _, frame = checks(clean, adv, probes, model, n, transfer=own)
    assert "whitebox_not_weaker_than_transfer" not in set(frame["check"])


def test_accuracy_rising_with_eps_fails() -> None:
    clean, adv, probes, model, n = healthy_run()
    # PGD: 50 correct at 0.05 but 90 at 0.1
    mask = (adv["attack"] == "pgd_linf") & (adv["eps"] == 0.1)
    adv.loc[mask, "prediction"] = adv.loc[mask, "label"]
    adv["correct"] = adv["prediction"] == adv["label"]
    _, frame = checks(clean, adv, probes, model, n)
    row = frame[
        (frame["check"] == "accuracy_non_increasing_in_eps")
        & frame["detail"].str.startswith("pgd_linf")
    ].iloc[0]
    assert not row["passed"] and row["value"] == pytest.approx(50.0)
