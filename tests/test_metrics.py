"""Metrics from stored per-example outcomes, the metrics table contract, the aggregate CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robustlab.io import write_frame, write_json
from robustlab.metrics.accuracy import clean_accuracy
from robustlab.metrics.adversarial import attack_metrics, wcar_coverage, worst_case_metrics
from robustlab.metrics.intervals import bootstrap_mean_interval, per_image_accuracy, wilson_interval
from robustlab.metrics.natural import corruption_metrics, normalised_metrics
from robustlab.metrics.table import (
    METRICS_COLUMNS,
    RunOutcomes,
    finalize_metrics,
    metrics_json,
    run_metrics,
    validate_metrics_frame,
    write_metrics,
)

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
# Model errors (of 4 images, percent): fog 25, 50; noise 50, 75. Clean error 25 (3/4 correct).
MODEL_NAT = natural_frame({("fog", 1): 1, ("fog", 2): 2, ("noise", 1): 2, ("noise", 2): 3})
# Baseline errors: fog 50, 75; noise 75, 100. Clean error 25.
BASE_NAT = natural_frame({("fog", 1): 2, ("fog", 2): 3, ("noise", 1): 3, ("noise", 2): 4})


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
    assert rows[("noise", 2.0, "accuracy")] == (25.0, 4)
    # Mean accuracy (75 + 50 + 50 + 25) / 4 = 50; unnormalised mCE = mean error = 50.
    assert rows[("all_corruptions", None, "accuracy")] == (50.0, 16)
    assert rows[("all_corruptions", None, "mce_unnormalised")] == (50.0, 16)


def test_normalised_mce_hand_computed() -> None:
    rows = rows_of(normalised_metrics(MODEL_NAT, 75.0, BASE_NAT, 75.0))
    # CE_fog = (25 + 50) / (50 + 75) = 60 %; CE_noise = (50 + 75) / (75 + 100) = 71.43 %.
    assert rows[("fog", None, "ce")] == (pytest.approx(60.0), 8)
    assert rows[("noise", None, "ce")][0] == pytest.approx(12500 / 175)
    assert rows[("all_corruptions", None, "mce")][0] == pytest.approx((60 + 12500 / 175) / 2)
    # relative: fog (0 + 25) / (25 + 50) = 33.33 %; noise (25 + 50) / (50 + 75) = 60 %.
    assert rows[("fog", None, "relative_ce")][0] == pytest.approx(100 / 3)
    assert rows[("noise", None, "relative_ce")][0] == pytest.approx(60.0)
    assert rows[("all_corruptions", None, "relative_mce")] == (pytest.approx(140 / 3), 16)
    # The baseline against itself is 100 %.
    own = rows_of(normalised_metrics(BASE_NAT, 75.0, BASE_NAT, 75.0))
    assert own[("all_corruptions", None, "mce")][0] == pytest.approx(100.0)


def test_zero_denominator_gives_nan() -> None:
    perfect = natural_frame({("fog", 1): 0, ("fog", 2): 0})
    rows = rows_of(normalised_metrics(MODEL_NAT, 75.0, perfect, 100.0))
    assert math.isnan(rows[("fog", None, "ce")][0])
    assert math.isnan(rows[("all_corruptions", None, "mce")][0])
    assert ("noise", None, "ce") not in rows  # the baseline lacks it: nothing invented


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


def test_table_contract_and_conventions(tmp_path: Path) -> None:
    frame = table(outcomes(BASE_NAT))
    assert list(frame.columns) == METRICS_COLUMNS
    validate_metrics_frame(frame)
    rows = {(r.family, r.noise, r.metric): r for r in frame.itertuples(index=False)}
    assert rows[("clean", "", "accuracy")].value == 75.0
    assert math.isnan(rows[("clean", "", "accuracy")].level)
    wcar = frame[frame["metric"] == "wcar"]
    assert set(wcar["noise"]) == {"all_attacks"} and list(wcar["level"]) == [0.05, 0.1]
    assert rows[("natural", "all_corruptions", "mce")].value == pytest.approx(
        (60 + 12500 / 175) / 2
    )
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
    per_image = per_image_accuracy(MODEL_NAT, "corruption", ["fog", "noise"])
    assert ci("natural", "all_corruptions", nan, "accuracy") == bootstrap_mean_interval(per_image)
    # image 0 wrong in every cell, image 1 right in 1 of 4, image 2 in 3 of 4, image 3 in all:
    # per-image 0, 25, 75, 100 %, whose mean is the row's value (50 %)
    assert list(per_image) == [0.0, 25.0, 75.0, 100.0]
    low, high = ci("natural", "all_corruptions", nan, "accuracy")
    assert 0.0 <= low < 50.0 < high <= 100.0
    # no interval for counts, mCE and training rows
    for key in [
        ("complexity", "", nan, "params"),
        ("adversarial", "pgd_linf", 0.05, "forward_passes"),
        ("natural", "all_corruptions", nan, "mce"),
        ("natural", "all_corruptions", nan, "mce_unnormalised"),
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


def test_metrics_json_keys() -> None:
    out = metrics_json(table(outcomes(BASE_NAT)))
    model = out["fm"]["a1/standard"]
    assert model["clean_accuracy"] == 75.0
    assert model["pgd_linf@0.05_robust_accuracy"] == 75.0
    assert model["pgd_linf@0.05_ar"] == 66.6667
    assert model["wcar@0.05"] == 33.3333
    assert model["fog@1_accuracy"] == 75.0
    assert model["fog_ce"] == 60.0
    assert model["corruption_accuracy"] == 50.0
    assert model["mce_unnormalised"] == 50.0
    assert model["mce"] == 65.7143
    assert model["params"] == 1234.0
    assert list(model) == sorted(model)
    json.dumps(out, allow_nan=False)


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
        sys.executable,
        "-m",
        "stages.aggregate",
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
        "--out-json",
        str(root / "reports" / "metrics.json"),
        "--attack",
        "pgd_linf",
        "--attack",
        "fgsm",
        *extra,
    ]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)


def test_aggregate_cli(tmp_path: Path) -> None:
    write_run(tmp_path, "fm", "base", "standard", BASE_NAT)
    write_run(tmp_path, "fm", "a1", "pgd_at", MODEL_NAT)
    done = aggregate(tmp_path, "--baseline", "fm=base/standard")
    assert done.returncode == 0, done.stderr
    frame = pq.read_table(tmp_path / "results" / "metrics.parquet").to_pandas()
    validate_metrics_frame(frame)
    summary = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert summary["fm"]["a1/pgd_at"]["mce"] == 65.7143
    assert summary["fm"]["base/standard"]["mce"] == 100.0
    assert summary["fm"]["a1/pgd_at"]["final_val_accuracy"] == 82.5

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
