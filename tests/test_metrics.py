"""Metrics from stored per-example outcomes, the metrics table contract, the aggregate CLI."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robustlab.io import write_frame, write_json
from robustlab.metrics.accuracy import clean_accuracy
from robustlab.metrics.adversarial import attack_metrics, wcar_coverage, worst_case_metrics
from robustlab.metrics.intervals import bootstrap_mean_interval, per_image_share, wilson_interval
from robustlab.metrics.natural import (
    CORRUPTION_SETS,
    corruption_metrics,
    missing_corruptions,
    normalised_metrics,
    per_image_accuracy,
)
from robustlab.metrics.table import (
    HEADLINE_KEYS,
    METRICS_COLUMNS,
    RunOutcomes,
    finalize_metrics,
    metric_key,
    metrics_json,
    run_metrics,
    validate_metrics_frame,
    write_metrics,
)
from tests.stage_cli import stage_command, stage_env

# ADV below has fgsm at one eps only: the partial-level warning is expected (tested on its own).
pytestmark = pytest.mark.filterwarnings("ignore:WCAR at:UserWarning")

REPO = Path(__file__).resolve().parents[1]
LABELS = [0, 1, 2, 3]


def clean_frame(predictions: list[int]) -> pd.DataFrame:
    pred = np.array(predictions, dtype=np.int16)
    label = np.array(LABELS[: len(pred)], dtype=np.int16)
    return pd.DataFrame(
        {
            "index": np.arange(len(pred), dtype=np.int64),
            "label": label,
            "prediction": pred,
            "correct": pred == label,
        }
    )


def adversarial_frame(
    clean_pred: list[int], runs: dict[tuple[str, float], list[bool]]
) -> pd.DataFrame:
    """One row per image of each (attack, eps) with the given correctness."""
    parts = []
    for (attack, eps), correct in runs.items():
        n = len(correct)
        parts.append(
            pd.DataFrame(
                {
                    "attack": attack,
                    "eps": np.float64(eps),
                    "index": np.arange(n, dtype=np.int64),
                    "label": np.array(LABELS[:n], dtype=np.int16),
                    "clean_prediction": np.array(clean_pred[:n], dtype=np.int16),
                    "prediction": np.where(correct, LABELS[:n], 9).astype(np.int16),
                    "correct": np.array(correct, dtype=bool),
                    "linf": np.float32(eps),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def natural_frame(wrong: dict[tuple[str, int], int], n: int = 4) -> pd.DataFrame:
    """``wrong[(corruption, severity)]`` of ``n`` images misclassified."""
    parts = []
    for (corruption, severity), k in wrong.items():
        correct = np.arange(n) >= k
        parts.append(
            pd.DataFrame(
                {
                    "corruption": corruption,
                    "severity": np.int16(severity),
                    "index": np.arange(n, dtype=np.int64),
                    "label": np.zeros(n, dtype=np.int16),
                    "prediction": np.where(correct, 0, 1).astype(np.int16),
                    "correct": correct,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def rows_of(frame: pd.DataFrame) -> dict[tuple[str, float, str], tuple[float, int]]:
    return {
        (r.noise, r.level, r.metric): (r.value, r.n)
        for r in frame.itertuples(index=False)
        if not math.isnan(r.level)
    } | {
        (r.noise, None, r.metric): (r.value, r.n)
        for r in frame.itertuples(index=False)
        if math.isnan(r.level)
    }


# Images 0-3, labels 0-3; clean predictions correct on 0, 1, 2 (image 3 wrong).
CLEAN_PRED = [0, 1, 2, 9]
ADV = adversarial_frame(
    CLEAN_PRED,
    {
        # PGD keeps 0 and 1, breaks 2, flips clean-wrong image 3 to correct.
        ("pgd_linf", 0.05): [True, True, False, True],
        # FGSM keeps 0 and 2, breaks 1.
        ("fgsm", 0.05): [True, False, True, False],
        ("pgd_linf", 0.1): [False, False, False, False],
    },
)
# Model errors (of images 0-3, percent): fog 25, 50; gaussian_noise 50, 75. Clean error on those
# images 25 (CLEAN_PRED: 3/4 correct).
MODEL_NAT = natural_frame(
    {("fog", 1): 1, ("fog", 2): 2, ("gaussian_noise", 1): 2, ("gaussian_noise", 2): 3}
)
# Baseline errors: fog 50, 75; gaussian_noise 75, 100. Clean error 25.
BASE_NAT = natural_frame(
    {("fog", 1): 2, ("fog", 2): 3, ("gaussian_noise", 1): 3, ("gaussian_noise", 2): 4}
)


def test_clean_accuracy() -> None:
    assert clean_accuracy(clean_frame(CLEAN_PRED)) == (75.0, 4)
    value, n = clean_accuracy(clean_frame([]))
    assert math.isnan(value) and n == 0


def test_attack_metrics_hand_computed() -> None:
    rows = rows_of(attack_metrics(ADV))
    # PGD: 3 of 4 correct overall; of the 3 clean-correct images 2 survive.
    assert rows[("pgd_linf", 0.05, "robust_accuracy")] == (75.0, 4)
    assert rows[("pgd_linf", 0.05, "ar")][0] == pytest.approx(200 / 3)
    assert rows[("pgd_linf", 0.05, "ar")][1] == 3
    assert rows[("pgd_linf", 0.05, "asr")][0] == pytest.approx(100 / 3)
    assert rows[("fgsm", 0.05, "robust_accuracy")] == (50.0, 4)
    assert rows[("fgsm", 0.05, "ar")][0] == pytest.approx(200 / 3)
    assert rows[("pgd_linf", 0.1, "ar")] == (0.0, 3)
    assert rows[("pgd_linf", 0.1, "asr")] == (100.0, 3)


def test_wcar_per_image_worst_case() -> None:
    with pytest.warns(UserWarning, match="covers pgd_linf but not fgsm"):
        rows = rows_of(worst_case_metrics(ADV))
    # At 0.05 PGD breaks image 2 and FGSM image 1: only image 0 of the 3 clean-correct survives.
    assert rows[("all_attacks", 0.05, "wcar")][0] == pytest.approx(100 / 3)
    assert rows[("all_attacks", 0.05, "wcar")][1] == 3
    assert rows[("all_attacks", 0.1, "wcar")] == (0.0, 3)
    # An attack evaluated on images 0-1 only: WCAR uses the images every attack evaluated.
    partial = adversarial_frame(CLEAN_PRED, {("a", 0.1): [True, True, True, True]})
    partial = pd.concat([partial, adversarial_frame(CLEAN_PRED, {("b", 0.1): [True, False]})])
    assert rows_of(worst_case_metrics(partial))[("all_attacks", 0.1, "wcar")] == (50.0, 2)


def linf_outcomes(attack: str, level: int, eps: float, correct: list[bool]) -> pd.DataFrame:
    """Outcomes of images 0..len(correct)-1 (labels = index); clean predictions right on
    images 0-4, wrong on image 5."""
    n = len(correct)
    label = np.arange(n, dtype=np.int16)
    clean_pred = np.where(np.arange(n) < 5, label, 9).astype(np.int16)
    return pd.DataFrame(
        {
            "attack": attack,
            "norm": "linf",
            "level": np.int16(level),
            "eps": np.float64(eps),
            "index": np.arange(n, dtype=np.int64),
            "label": label,
            "clean_prediction": clean_pred,
            "prediction": np.where(correct, label, 9).astype(np.int16),
            "correct": np.array(correct, dtype=bool),
        }
    )


T, F = True, False
# Six images, 0-4 clean-correct. pgd_linf and fgsm at both levels on every image; autoattack
# only at level 2 and only on images 0-3 (a subset of points).
PARTIAL_ADV = pd.concat(
    [
        linf_outcomes("pgd_linf", 1, 0.05, [T, T, T, F, T, T]),
        linf_outcomes("fgsm", 1, 0.05, [T, T, F, T, T, F]),
        linf_outcomes("pgd_linf", 2, 0.1, [T, F, T, T, T, F]),
        linf_outcomes("fgsm", 2, 0.1, [T, T, T, T, F, F]),
        linf_outcomes("autoattack", 2, 0.1, [F, T, T, T]),
    ],
    ignore_index=True,
)


def test_wcar_over_attacks_at_a_subset_of_levels_and_points() -> None:
    with pytest.warns(UserWarning, match="level 1 .* but not autoattack"):
        rows = rows_of(worst_case_metrics(PARTIAL_ADV))
    # Level 1 (eps 0.05): pgd_linf and fgsm only. Clean-correct images 0-4; worst case per
    # image: 0 T, 1 T, 2 F (fgsm), 3 F (pgd), 4 T -> 3 of 5 = 60 %.
    assert rows[("all_attacks", 0.05, "wcar")] == (60.0, 5)
    # Level 2 (eps 0.1): autoattack evaluated images 0-3 only, so n = 4 clean-correct images;
    # 0 F (autoattack), 1 F (pgd), 2 T, 3 T -> 2 of 4 = 50 %. Image 4 (fgsm broke it) does
    # not count: autoattack never saw it.
    assert rows[("all_attacks", 0.1, "wcar")] == (50.0, 4)


def test_wcar_coverage_names_the_attacks_and_missing_ones() -> None:
    out = RunOutcomes(clean=clean_frame(CLEAN_PRED), adversarial=PARTIAL_ADV, natural=MODEL_NAT)
    with pytest.warns(UserWarning, match="autoattack"):
        frame = finalize_metrics([run_metrics("fm", "a1", "standard", out)])
    norms = {"pgd_linf": "linf", "fgsm": "linf", "autoattack": "linf"}
    cover = wcar_coverage(frame, norms)
    assert list(cover["level"]) == [0.05, 0.1]
    assert list(cover["attacks"]) == ["fgsm, pgd_linf", "autoattack, fgsm, pgd_linf"]
    assert list(cover["missing"]) == ["autoattack", ""]
    assert list(cover["n"]) == [5, 4]
    # an L2 attack at the same eps is not part of the L-inf worst case
    cover = wcar_coverage(frame, {**norms, "fgsm": "l2"})
    assert list(cover["attacks"]) == ["pgd_linf", "autoattack, pgd_linf"]
    # WCAR's interval: Wilson over its n images (3 of 5, 2 of 4)
    wcar = frame[frame["metric"] == "wcar"]
    assert list(zip(wcar["ci_low"], wcar["ci_high"], strict=True)) == [
        wilson_interval(3, 5),
        wilson_interval(2, 4),
    ]


def test_zero_clean_correct_gives_nan_with_n_zero() -> None:
    adv = adversarial_frame([9, 9, 9, 9], {("pgd_linf", 0.05): [True, False, False, False]})
    rows = rows_of(attack_metrics(adv))
    for metric in ("ar", "asr"):
        value, n = rows[("pgd_linf", 0.05, metric)]
        assert math.isnan(value) and n == 0
    assert rows[("pgd_linf", 0.05, "robust_accuracy")] == (25.0, 4)
    value, n = rows_of(worst_case_metrics(adv))[("all_attacks", 0.05, "wcar")]
    assert math.isnan(value) and n == 0


def test_duplicate_outcomes_are_an_error() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        attack_metrics(pd.concat([ADV, ADV.iloc[:1]]))


def test_corruption_metrics_hand_computed() -> None:
    rows = rows_of(corruption_metrics(MODEL_NAT))
    assert rows[("fog", 1.0, "accuracy")] == (75.0, 4)
    assert rows[("gaussian_noise", 2.0, "accuracy")] == (25.0, 4)
    # Mean accuracy (75 + 50 + 50 + 25) / 4 = 50; unnormalised mCE = mean error = 50; n = the 4
    # distinct images (not 4 cells x 4 images).
    assert rows[("imagenet_c", None, "accuracy")] == (50.0, 4)
    assert rows[("imagenet_c", None, "mce_unnormalised")] == (50.0, 4)
    # Only sets with an evaluated corruption get rows.
    assert {k[0] for k in rows if k[1] is None} == {"imagenet_c"}


def test_normalised_mce_hand_computed() -> None:
    clean = clean_frame(CLEAN_PRED)
    rows = rows_of(normalised_metrics(MODEL_NAT, clean, BASE_NAT, clean))
    # CE_fog = (25 + 50) / (50 + 75) = 60 %; CE_gaussian = (50 + 75) / (75 + 100) = 71.43 %.
    assert rows[("fog", None, "ce")] == (pytest.approx(60.0), 4)
    assert rows[("gaussian_noise", None, "ce")][0] == pytest.approx(12500 / 175)
    assert rows[("imagenet_c", None, "mce")][0] == pytest.approx((60 + 12500 / 175) / 2)
    # relative: fog (0 + 25) / (25 + 50) = 33.33 %; gaussian (25 + 50) / (50 + 75) = 60 %.
    assert rows[("fog", None, "relative_ce")][0] == pytest.approx(100 / 3)
    assert rows[("gaussian_noise", None, "relative_ce")][0] == pytest.approx(60.0)
    assert rows[("imagenet_c", None, "relative_mce")] == (pytest.approx(140 / 3), 4)
    # The baseline against itself is 100 %.
    own = rows_of(normalised_metrics(BASE_NAT, clean, BASE_NAT, clean))
    assert own[("imagenet_c", None, "mce")][0] == pytest.approx(100.0)


def test_zero_denominator_gives_nan() -> None:
    clean = clean_frame(CLEAN_PRED)
    perfect = natural_frame({("fog", 1): 0, ("fog", 2): 0})
    rows = rows_of(normalised_metrics(MODEL_NAT, clean, perfect, clean_frame([0, 1, 2, 3])))
    assert math.isnan(rows[("fog", None, "ce")][0])
    assert math.isnan(rows[("imagenet_c", None, "mce")][0])
    assert ("gaussian_noise", None, "ce") not in rows  # the baseline lacks it: nothing invented


def outcome_rows(cells: dict[tuple[str, int], dict[int, bool]]) -> pd.DataFrame:
    """natural.parquet rows: ``cells[(corruption, severity)] = {image index: correct}``."""
    rows = [
        (c, np.int16(s), np.int64(i), np.int16(0), np.int16(0 if ok else 1), ok)
        for (c, s), images in cells.items()
        for i, ok in images.items()
    ]
    return pd.DataFrame(
        rows, columns=["corruption", "severity", "index", "label", "prediction", "correct"]
    )


def clean_rows(correct: list[bool]) -> pd.DataFrame:
    return clean_frame([label if ok else 9 for label, ok in zip(LABELS, correct, strict=True)])


T, F = True, False
# Four clean test images; the corruptions ran on images 0-1 (fog, gaussian_noise) and 0, 2
# (spatter, an ImageNet-C extra). Clean error of the model: 25 % on all four, 50 % on {0, 1},
# 0 % on {0, 2}; of the baseline: 50 % on all four, 0 % on {0, 1}, 50 % on {0, 2}.
J_CLEAN = clean_rows([T, F, T, T])
J_BASE_CLEAN = clean_rows([T, T, F, F])
J_MODEL = outcome_rows(
    {
        ("fog", 1): {0: F, 1: F},  # E 100
        ("fog", 2): {0: T, 1: F},  # E 50
        ("gaussian_noise", 1): {0: T, 1: F},  # E 50
        ("gaussian_noise", 2): {0: F, 1: F},  # E 100
        ("spatter", 1): {0: F, 2: F},  # E 100
    }
)
J_BASE = outcome_rows(
    {
        ("fog", 1): {0: F, 1: T},  # E 50
        ("fog", 2): {0: F, 1: F},  # E 100
        ("gaussian_noise", 1): {0: F, 1: F},  # E 100
        ("gaussian_noise", 2): {0: F, 1: F},  # E 100
        ("spatter", 1): {0: F, 2: F},  # E 100
    }
)


def test_relative_ce_takes_the_clean_error_on_the_corrupted_images() -> None:
    rows = rows_of(normalised_metrics(J_MODEL, J_CLEAN, J_BASE, J_BASE_CLEAN))
    # CE_fog = (100 + 50) / (50 + 100) = 100 %; CE_gaussian = (50 + 100) / (100 + 100) = 75 %.
    assert rows[("fog", None, "ce")] == (pytest.approx(100.0), 2)
    assert rows[("gaussian_noise", None, "ce")] == (pytest.approx(75.0), 2)
    # relative, clean errors on images {0, 1} (model 50, baseline 0):
    # fog ((100 - 50) + (50 - 50)) / ((50 - 0) + (100 - 0)) = 50 / 150 = 33.33 %
    # (the whole clean set's 25 and 50 would give (75 + 25) / (0 + 50) = 200 %);
    # gaussian ((50 - 50) + (100 - 50)) / (100 + 100) = 25 %.
    assert rows[("fog", None, "relative_ce")] == (pytest.approx(100 / 3), 2)
    assert rows[("gaussian_noise", None, "relative_ce")] == (pytest.approx(25.0), 2)
    # spatter on images {0, 2} (clean errors model 0, baseline 50): CE 100 / 100 = 100 %,
    # relative (100 - 0) / (100 - 50) = 200 %.
    assert rows[("spatter", None, "ce")] == (pytest.approx(100.0), 2)
    assert rows[("spatter", None, "relative_ce")] == (pytest.approx(200.0), 2)
    # mCE over the ImageNet-C corruptions only: (100 + 75) / 2 = 87.5, relative
    # (100/3 + 25) / 2 = 175/6; mixing spatter in would give 91.67 and 86.11. n: images 0, 1.
    assert rows[("imagenet_c", None, "mce")] == (pytest.approx(87.5), 2)
    assert rows[("imagenet_c", None, "relative_mce")] == (pytest.approx(175 / 6), 2)
    assert rows[("extra_corruptions", None, "mce")] == (pytest.approx(100.0), 2)
    assert rows[("extra_corruptions", None, "relative_mce")] == (pytest.approx(200.0), 2)
    assert ("geometric_corruptions", None, "mce") not in rows


def test_an_extra_corruption_never_changes_the_imagenet_c_means() -> None:
    spatter = J_MODEL["corruption"] == "spatter"
    base_spatter = J_BASE["corruption"] == "spatter"
    with_extra = rows_of(normalised_metrics(J_MODEL, J_CLEAN, J_BASE, J_BASE_CLEAN))
    without = rows_of(
        normalised_metrics(J_MODEL[~spatter], J_CLEAN, J_BASE[~base_spatter], J_BASE_CLEAN)
    )
    for metric in ("mce", "relative_mce"):
        assert with_extra[("imagenet_c", None, metric)] == without[("imagenet_c", None, metric)]
    assert ("extra_corruptions", None, "mce") not in without
    raw = rows_of(corruption_metrics(J_MODEL))
    raw_without = rows_of(corruption_metrics(J_MODEL[~spatter]))
    for metric in ("accuracy", "mce_unnormalised"):
        assert raw[("imagenet_c", None, metric)] == raw_without[("imagenet_c", None, metric)]


def test_corruption_set_means_hand_computed() -> None:
    rows = rows_of(corruption_metrics(J_MODEL))
    # ImageNet-C cells: accuracies 0, 50, 50, 0 -> mean 25, mean error 75; images 0 and 1.
    assert rows[("imagenet_c", None, "accuracy")] == (25.0, 2)
    assert rows[("imagenet_c", None, "mce_unnormalised")] == (75.0, 2)
    # extras: spatter severity 1 only, accuracy 0 on images 0 and 2.
    assert rows[("extra_corruptions", None, "accuracy")] == (0.0, 2)
    assert rows[("extra_corruptions", None, "mce_unnormalised")] == (100.0, 2)
    assert rows[("fog", 2.0, "accuracy")] == (50.0, 2)


def test_the_baseline_is_compared_on_the_images_both_runs_evaluated() -> None:
    # The baseline evaluated fog on image 0 only: the model is compared on image 0 too.
    base = J_BASE[(J_BASE["index"] == 0) & (J_BASE["corruption"] == "fog")]
    rows = rows_of(normalised_metrics(J_MODEL, J_CLEAN, base, J_BASE_CLEAN))
    # image 0: model fog errors 100, 0 (clean 0), baseline 100, 100 (clean 0):
    # CE = 100 / 200 = 50 %, relative = 100 / 200 = 50 %.
    assert rows[("fog", None, "ce")] == (pytest.approx(50.0), 1)
    assert rows[("fog", None, "relative_ce")] == (pytest.approx(50.0), 1)
    assert rows[("imagenet_c", None, "mce")] == (pytest.approx(50.0), 1)
    assert {k[0] for k in rows} == {"fog", "imagenet_c"}


def test_per_image_accuracy_hand_computed() -> None:
    got = per_image_accuracy(J_MODEL, CORRUPTION_SETS["imagenet_c"])
    # image 0: fog F, T, gaussian T, F -> 50 %; image 1: all four wrong -> 0 %.
    assert got.to_dict() == {0: 50.0, 1: 0.0}
    assert got.name == "accuracy"
    both = per_image_accuracy(J_MODEL, ["fog", "gaussian_noise", "spatter"])
    # image 0: 2 of 5 cells; image 2: spatter only, wrong.
    assert both.to_dict() == {0: 40.0, 1: 0.0, 2: 0.0}
    assert per_image_accuracy(J_MODEL, CORRUPTION_SETS["geometric_corruptions"]).empty
    # The mean over images equals the set's mean accuracy when every image is in every cell.
    assert per_image_accuracy(MODEL_NAT, ["fog", "gaussian_noise"]).mean() == 50.0


def test_corruption_sets_agree_with_the_registry() -> None:
    from robustlab.noise.natural import COMMON, GROUPS, corruption_names

    assert CORRUPTION_SETS["imagenet_c"] == COMMON
    assert CORRUPTION_SETS["extra_corruptions"] == GROUPS["extra"]
    assert CORRUPTION_SETS["geometric_corruptions"] == GROUPS["geometric"]
    members = [c for names in CORRUPTION_SETS.values() for c in names]
    assert sorted(members) == corruption_names()  # every registered one, each in one set


def test_natural_metric_errors() -> None:
    with pytest.raises(ValueError, match="corruption 'wobble' belongs to no corruption set"):
        corruption_metrics(outcome_rows({("wobble", 1): {0: T}}))
    with pytest.raises(ValueError, match="lack column.*correct"):
        corruption_metrics(J_MODEL.drop(columns="correct"))
    with pytest.raises(ValueError, match="index 0 appears twice for corruption 'fog'"):
        per_image_accuracy(pd.concat([J_MODEL, J_MODEL.iloc[:1]]), ["fog"])
    # A corrupted image the clean evaluation lacks: no silent fallback to another clean error.
    with pytest.raises(ValueError, match="baseline: corrupted image index 2 has no clean outcome"):
        normalised_metrics(J_MODEL, J_CLEAN, J_BASE, J_BASE_CLEAN.iloc[:2])
    with pytest.raises(ValueError, match="model clean outcomes: image index 0 appears twice"):
        normalised_metrics(J_MODEL, pd.concat([J_CLEAN, J_CLEAN]), J_BASE, J_BASE_CLEAN)
    assert missing_corruptions(["fog", "spatter"], "imagenet_c")[:2] == (
        "gaussian_noise",
        "shot_noise",
    )
    assert len(missing_corruptions(["fog"], "imagenet_c")) == 14
    assert missing_corruptions(CORRUPTION_SETS["extra_corruptions"], "extra_corruptions") == ()
    with pytest.raises(ValueError, match="unknown corruption set 'all_corruptions'"):
        missing_corruptions([], "all_corruptions")


def outcomes(nat: pd.DataFrame = MODEL_NAT) -> RunOutcomes:
    return RunOutcomes(clean=clean_frame(CLEAN_PRED), adversarial=ADV, natural=nat)


CARD = {"params": 1234, "macs": 56789, "trainable_params": 1234, "family": "cnn"}
HISTORY = pd.DataFrame(
    {
        "epoch": np.array([1, 2], dtype=np.int64),
        "lr": [0.1, 0.05],
        "train_loss": [1.0, 0.5],
        "train_accuracy": [60.0, 80.0],
        "val_accuracy": [70.0, 82.5],
        "val_pgd_accuracy": [10.0, 12.5],
        "seconds": [1.5, 2.0],
    }
)


def table(baseline: RunOutcomes | None = None, arch: str = "a1") -> pd.DataFrame:
    frame = run_metrics("fm", arch, "standard", outcomes(), CARD, HISTORY, baseline=baseline)
    return finalize_metrics([frame])


def test_missing_baseline_gives_no_normalised_rows() -> None:
    metrics = set(table()["metric"])
    assert {"accuracy", "robust_accuracy", "ar", "asr", "wcar", "mce_unnormalised"} <= metrics
    assert not metrics & {"ce", "relative_ce", "mce", "relative_mce"}
    with_base = set(table(outcomes(BASE_NAT))["metric"])
    assert {"ce", "relative_ce", "mce", "relative_mce"} <= with_base


def test_run_metrics_joins_the_baseline_on_the_corrupted_images() -> None:
    model = RunOutcomes(clean=J_CLEAN, adversarial=ADV, natural=J_MODEL)
    base = RunOutcomes(clean=J_BASE_CLEAN, adversarial=ADV, natural=J_BASE)
    frame = finalize_metrics([run_metrics("fm", "a1", "standard", model, baseline=base)])
    natural = frame[frame["family"] == "natural"]
    rows = {(r.noise, r.metric): (r.value, r.n) for r in natural.itertuples()}
    # As in test_relative_ce_takes_the_clean_error_on_the_corrupted_images: the clean errors of
    # both runs on images {0, 1} (50 and 0), not on all four (25 and 50).
    assert rows[("imagenet_c", "relative_mce")] == (pytest.approx(175 / 6), 2)
    assert rows[("imagenet_c", "mce")] == (pytest.approx(87.5), 2)
    assert rows[("extra_corruptions", "relative_mce")] == (pytest.approx(200.0), 2)
    # n: distinct images, never a sum over cells; the clean row keeps all four test images.
    assert rows[("imagenet_c", "accuracy")] == (25.0, 2)
    assert frame.loc[frame["family"] == "clean", "n"].tolist() == [4]
    assert not {"all_corruptions", "geometric_corruptions"} & set(frame["noise"])


def test_table_contract_and_conventions(tmp_path: Path) -> None:
    frame = table(outcomes(BASE_NAT))
    assert list(frame.columns) == METRICS_COLUMNS
    validate_metrics_frame(frame)
    rows = {(r.family, r.noise, r.metric): r for r in frame.itertuples(index=False)}
    assert rows[("clean", "", "accuracy")].value == 75.0
    assert math.isnan(rows[("clean", "", "accuracy")].level)
    wcar = frame[frame["metric"] == "wcar"]
    assert set(wcar["noise"]) == {"all_attacks"} and list(wcar["level"]) == [0.05, 0.1]
    assert rows[("natural", "imagenet_c", "mce")].value == pytest.approx((60 + 12500 / 175) / 2)
    assert (
        rows[("complexity", "", "params")].value == 1234
        and rows[("complexity", "", "params")].n == 0
    )
    assert ("training", "", "train_seconds") not in rows  # timings would break determinism
    assert rows[("training", "", "final_val_pgd_accuracy")].value == 12.5
    assert rows[("training", "", "epochs")].value == 2
    path = tmp_path / "m.parquet"
    write_metrics(frame, path)
    schema = pq.read_schema(path)
    assert schema.names == METRICS_COLUMNS
    assert [schema.field(c).type for c in METRICS_COLUMNS] == [pa.string()] * 5 + [
        pa.float64(),
        pa.string(),
        pa.float64(),
        pa.int64(),
        pa.float64(),
        pa.float64(),
    ]
    back = pq.read_table(path).to_pandas()
    validate_metrics_frame(back)
    pd.testing.assert_frame_equal(back, frame)


def test_intervals_of_accuracy_type_rows() -> None:
    frame = table(outcomes(BASE_NAT))
    rows = {
        (r.family, r.noise, None if math.isnan(r.level) else r.level, r.metric): r
        for r in frame.itertuples(index=False)
    }

    def ci(family: str, noise: str, level: float | None, metric: str) -> tuple[float, float]:
        r = rows[(family, noise, level, metric)]
        return (r.ci_low, r.ci_high)

    nan = None
    # clean 3 of 4; pgd_linf at 0.05: robust 3 of 4, AR 2 of the 3 clean-correct images
    assert ci("clean", "", nan, "accuracy") == wilson_interval(3, 4)
    assert ci("adversarial", "pgd_linf", 0.05, "robust_accuracy") == wilson_interval(3, 4)
    assert ci("adversarial", "pgd_linf", 0.05, "ar") == wilson_interval(2, 3)
    # ASR = 100 - AR: the mirrored interval
    low, high = wilson_interval(2, 3)
    assert ci("adversarial", "pgd_linf", 0.05, "asr") == (pytest.approx(100 - high), 100 - low)
    assert ci("natural", "fog", 1.0, "accuracy") == wilson_interval(3, 4)  # fog 1: 3 of 4
    # mean corruption accuracy: bootstrap over the 4 images of their accuracy over the cells
    per_image = per_image_share(MODEL_NAT, "corruption", ["fog", "gaussian_noise"])
    assert ci("natural", "imagenet_c", nan, "accuracy") == bootstrap_mean_interval(per_image)
    # image 0 wrong in every cell, image 1 right in 1 of 4, image 2 in 3 of 4, image 3 in all:
    # per-image 0, 25, 75, 100 %, whose mean is the row's value (50 %)
    assert list(per_image) == [0.0, 25.0, 75.0, 100.0]
    low, high = ci("natural", "imagenet_c", nan, "accuracy")
    assert 0.0 <= low < 50.0 < high <= 100.0
    # no interval for counts, mCE and training rows
    for key in [
        ("complexity", "", nan, "params"),
        ("adversarial", "pgd_linf", 0.05, "forward_passes"),
        ("natural", "imagenet_c", nan, "mce"),
        ("natural", "imagenet_c", nan, "mce_unnormalised"),
        ("training", "", nan, "final_val_accuracy"),
    ]:
        if key in rows:
            assert all(math.isnan(b) for b in ci(*key)), key


@pytest.mark.parametrize(
    ("mutate", "column"),
    [
        (lambda f: f.drop(columns="noise"), "noise"),
        (lambda f: f[["arch", *[c for c in METRICS_COLUMNS if c != "arch"]]], "arch"),
        (lambda f: f.assign(extra=1), "extra"),
        (lambda f: f.assign(n=f["n"].astype("float64")), "'n'"),
        (lambda f: f.assign(level=f["level"].astype("float32")), "level"),
        (lambda f: f.assign(metric=f["metric"].astype(object)), "metric"),
        (lambda f: f.assign(family="bogus"), "family"),
        (lambda f: f.drop(columns=["ci_low", "ci_high"]), "ci_low"),
        (lambda f: f.drop(columns="ci_high"), "ci_high"),
        (lambda f: f.assign(ci_low=f["ci_low"].astype("float32")), "ci_low"),
        (lambda f: f.assign(ci_low=f["ci_high"] + 1.0), "'ci_low' exceeds"),
        (lambda f: f.assign(ci_high=math.nan), "NaN together"),
    ],
)
def test_validate_names_offending_column(mutate, column: str) -> None:
    with pytest.raises(ValueError, match=column):
        validate_metrics_frame(mutate(table()))


def test_identical_inputs_give_identical_bytes(tmp_path: Path) -> None:
    a = run_metrics("fm", "a1", "standard", outcomes(), CARD, HISTORY)
    b = run_metrics("fm", "b2", "pgd_at", outcomes(BASE_NAT), CARD, HISTORY)
    write_metrics(finalize_metrics([a, b]), tmp_path / "1.parquet")
    # Another input order, shuffled rows: the same table.
    shuffled = [b.sample(frac=1, random_state=0), a.sample(frac=1, random_state=1)]
    write_metrics(finalize_metrics(shuffled), tmp_path / "2.parquet")
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
    write_json(metrics_json(finalize_metrics([a, b])), tmp_path / "1.json")
    write_json(metrics_json(finalize_metrics(shuffled)), tmp_path / "2.json")
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "2.json").read_bytes()


def test_metrics_json_holds_the_headline_keys_only() -> None:
    # table(): clean 3 of 4 correct; pgd_linf at eps 0.05 keeps 3 of 4, at the largest eps 0.1
    # none; WCAR at 0.1 (pgd_linf only): 0 of the 3 clean-correct images; mCE and relative mCE
    # against BASE_NAT as in test_normalised_metrics (65.7143, 46.6667); params and MACs from
    # CARD. No AutoAttack, stability, system rows and no sanity table: left out (DVC drops
    # null metrics).
    out = metrics_json(table(outcomes(BASE_NAT)))
    assert out == {
        "fm": {
            "a1/standard": {
                "clean_accuracy": 75.0,
                "pgd_linf_robust_accuracy": 0.0,
                "wcar": 0.0,
                "mce": 65.7143,
                "relative_mce": 46.6667,
                "params": 1234,
                "macs": 56789,
            }
        }
    }
    assert [k for k in HEADLINE_KEYS if k in out["fm"]["a1/standard"]] == list(
        out["fm"]["a1/standard"]
    )
    assert isinstance(out["fm"]["a1/standard"]["params"], int)
    json.dumps(out, allow_nan=False)


def test_metric_key_names_the_headline_rows_only() -> None:
    assert metric_key("clean", "", "accuracy") == "clean_accuracy"
    assert metric_key("adversarial", "pgd_linf", "robust_accuracy") == "pgd_linf_robust_accuracy"
    assert metric_key("adversarial", "all_attacks", "wcar") == "wcar"
    assert metric_key("natural", "imagenet_c", "mce") == "mce"
    assert metric_key("system", "all_variants", "nsd") == "nsd"
    # per-eps detail, other attacks, other norms' WCAR, other corruption sets: Parquet only
    assert metric_key("adversarial", "pgd_linf", "ar") is None
    assert metric_key("adversarial", "fgsm", "robust_accuracy") is None
    assert metric_key("adversarial", "all_l2_attacks", "wcar") is None
    assert metric_key("natural", "extra_corruptions", "mce") is None
    assert metric_key("adversarial", "pgd_linf", "forward_passes") is None
    assert len(HEADLINE_KEYS) == 12


def write_run(root: Path, dataset: str, arch: str, technique: str, nat: pd.DataFrame) -> None:
    results = root / "results" / dataset / arch / technique
    write_frame(clean_frame(CLEAN_PRED), results / "clean.parquet")
    for attack, outcomes_of_attack in ADV.groupby("attack"):
        write_frame(outcomes_of_attack, results / "adversarial" / f"{attack}.parquet")
    write_frame(nat, results / "natural.parquet")
    models = root / "models" / dataset / arch / technique
    write_json(
        {**CARD, "dataset": dataset, "arch": arch, "technique": technique}, models / "card.json"
    )
    write_frame(HISTORY, models / "history.parquet")


def aggregate(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        *stage_command("aggregate"),
        "--results-dir",
        str(root / "results"),
        "--models-dir",
        str(root / "models"),
        "--run",
        "fm/base/standard",
        "--run",
        "fm/a1/pgd_at",
        "--out-metrics",
        str(root / "results" / "metrics.parquet"),
        "--attack",
        "pgd_linf",
        "--attack",
        "fgsm",
        *extra,
    ]
    return subprocess.run(
        cmd, cwd=REPO, env=stage_env(), capture_output=True, text=True, check=False
    )


def test_aggregate_cli(tmp_path: Path) -> None:
    write_run(tmp_path, "fm", "base", "standard", BASE_NAT)
    write_run(tmp_path, "fm", "a1", "pgd_at", MODEL_NAT)
    done = aggregate(tmp_path, "--baseline", "fm=base/standard")
    assert done.returncode == 0, done.stderr
    frame = pq.read_table(tmp_path / "results" / "metrics.parquet").to_pandas()
    validate_metrics_frame(frame)
    mce = frame[(frame["metric"] == "mce") & (frame["noise"] == "imagenet_c")]
    assert dict(zip(mce["arch"], mce["value"].round(4), strict=True)) == {
        "a1": 65.7143,
        "base": 100.0,
    }
    # fog and gaussian_noise only: the imagenet_c rows say so in the log.
    assert "fm: the imagenet_c rows" in done.stderr
    assert "average 2 of the 15 ImageNet-C corruptions (missing: shot_noise," in done.stderr
    final = frame[(frame["metric"] == "final_val_accuracy") & (frame["arch"] == "a1")]
    assert final["value"].tolist() == [82.5]

    # A baseline that is not among the runs: a warning and no normalised rows.
    done = aggregate(tmp_path, "--baseline", "fm=absent/standard")
    assert done.returncode == 0 and "not among the --run values" in done.stderr
    frame = pq.read_table(tmp_path / "results" / "metrics.parquet").to_pandas()
    assert "mce" not in set(frame["metric"])

    (tmp_path / "results" / "fm" / "a1" / "pgd_at" / "natural.parquet").unlink()
    done = aggregate(tmp_path)
    assert done.returncode != 0
    assert "natural.parquet" in done.stderr and "stages.evaluate" in done.stderr

    (tmp_path / "results" / "fm" / "a1" / "pgd_at" / "adversarial" / "fgsm.parquet").unlink()
    done = aggregate(tmp_path)
    assert done.returncode != 0
    assert "fgsm.parquet" in done.stderr and "stages.attack" in done.stderr
