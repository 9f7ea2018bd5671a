"""The CLAT replication study: named variants in the comparisons and the report's study view
(robustlab.report.clat_study), and a dry run of presets/clat_study.yaml."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from robustlab.metrics.comparisons import orient, run_pairs
from robustlab.report.clat_study import (
    arms,
    is_study,
    paired_rows,
    pooled_difference,
    pooled_text,
    study_html,
)
from robustlab.report.data import ReportData
from robustlab.variants import Variant, arm_name, variant_from_card
from tests import background
from tests.pipeline_helpers import copy_repo, run
from tests.test_clat_stage import CLAT_CONFIG, REPO, TRAIN_CONFIG, _run

D, A = "fashion_mnist", "wrn_10_2"
SEEDS = (0, 1, 2)
# per seed: clean and PGD (eps 0.1) accuracy in percent
PGD_AT = {0: (80.0, 40.0), 1: (82.0, 41.0), 2: (84.0, 42.0)}
CLAT = {0: (81.0, 38.0), 1: (82.5, 37.5), 2: (84.0, 38.2)}
# CLAT minus PGD-AT of the same seed, as results/comparisons.parquet holds them (points)
CLEAN_DIFF = {0: 1.0, 1: 0.5, 2: 0.0}
PGD_DIFF = {0: -2.0, 1: -3.5, 2: -3.8}


def _metric_rows(technique: str, clean: float, pgd: float) -> list[dict]:
    base = {"dataset": D, "arch": A, "technique": technique, "n": 1000}
    nan = float("nan")
    return [
        {**base, "family": "clean", "noise": "", "level": nan, "metric": "accuracy",
         "value": clean, "ci_low": nan, "ci_high": nan},
        {**base, "family": "adversarial", "noise": "pgd_linf", "level": 0.1,
         "metric": "robust_accuracy", "value": pgd, "ci_low": nan, "ci_high": nan},
    ]  # fmt: skip


def _comparison(run_a: str, run_b: str, metric: str, noise: str, level: float, diff: float):
    return {"dataset": D, "arch": A, "run_a": run_a, "run_b": run_b, "metric": metric,
            "noise": noise, "level": level, "difference": diff, "ci_low": diff - 2,
            "ci_high": diff + 2, "p_value": 0.5, "n": 1000}  # fmt: skip


@pytest.fixture
def study() -> ReportData:
    """3 seeds x 2 arms: pgd_at_sS (6 epochs) and clat_sS (CLAT from pgd_at_sS's snapshot)."""
    rows, cards, comparisons = [], {}, []
    for s in SEEDS:
        rows += _metric_rows(f"pgd_at_s{s}", *PGD_AT[s]) + _metric_rows(f"clat_s{s}", *CLAT[s])
        cards[(D, A, f"pgd_at_s{s}")] = {
            "technique": "pgd_at", "variant": f"pgd_at_s{s}", "seed": s, "params": 1000,
            "trainable_params": 1000,
        }  # fmt: skip
        cards[(D, A, f"clat_s{s}")] = {
            "technique": "pgd_at+clat", "variant": f"clat_s{s}", "pretrained": f"pgd_at_s{s}",
            "seed": s, "params": 1000, "trainable_params": 50,
        }  # fmt: skip
        comparisons.append(
            _comparison(f"pgd_at_s{s}", f"clat_s{s}", "accuracy", "", math.nan, CLEAN_DIFF[s])
        )
        if s == 2:  # stored the other way round: read back with the sign flipped
            comparisons.append(
                _comparison("clat_s2", "pgd_at_s2", "robust_accuracy", "pgd_linf", 0.1, 3.8)
            )
        else:
            comparisons.append(
                _comparison(
                    f"pgd_at_s{s}", f"clat_s{s}", "robust_accuracy", "pgd_linf", 0.1, PGD_DIFF[s]
                )
            )
    # a pair across seeds is in the table too but is not one of the study's pairs
    comparisons.append(_comparison("pgd_at_s0", "clat_s1", "accuracy", "", math.nan, 9.0))
    return ReportData(
        metrics=pd.DataFrame(rows),
        cards=cards,
        comparisons=pd.DataFrame(comparisons),
        attack_norms={"pgd_linf": "linf"},
    )


def test_variants_read_from_cards_and_named_by_arm():
    card = {"technique": "pgd_at+clat", "pretrained": "pgd_at_s1", "seed": 1}
    assert variant_from_card("clat_random_s1", card) == Variant(
        "clat_random_s1", "pgd_at+clat", "pgd_at_s1", 1
    )
    # a registered CLAT run's card names no pretrained run: X of X+clat
    assert (
        variant_from_card("pgd_at+clat", {"technique": "pgd_at+clat", "seed": 0}).pretrained
        == "pgd_at"
    )
    assert variant_from_card("pgd_at", {"technique": "pgd_at", "seed": 0}).is_clat is False
    assert arm_name("clat_lr_x10_s2", 2) == "clat_lr_x10"
    assert arm_name("clat-seed2", 2) == "clat"
    assert arm_name("clat_s2", 1) == "clat_s2"  # the suffix is not this run's seed
    assert arm_name("pgd_at", 0) == "pgd_at"


def test_clat_variants_are_run_b_of_their_comparisons():
    grid_runs = [(D, A, "clat_s0"), (D, A, "pgd_at_s0"), (D, A, "pgd_at_s1")]
    pairs = [(a[2], b[2]) for a, b in run_pairs(grid_runs, clat={"clat_s0"})]
    assert pairs == [
        ("pgd_at_s0", "clat_s0"),  # CLAT minus the run it starts from
        ("pgd_at_s0", "pgd_at_s1"),  # alphabetical among the rest
        ("pgd_at_s1", "clat_s0"),
    ]
    # without being named CLAT, "clat_s0" is ordered alphabetically, as any technique
    assert orient("pgd_at_s0", "clat_s0") == ("clat_s0", "pgd_at_s0")
    assert orient("pgd_at_s0", "clat_s0", clat={"clat_s0"}) == ("pgd_at_s0", "clat_s0")
    assert orient("pgd_at+clat", "pgd_at") == ("pgd_at", "pgd_at+clat")  # as before variants


def test_pooled_difference_is_the_mean_with_a_t_interval_over_seeds():
    pooled = pooled_difference([-2.0, -3.5, -3.8])
    # mean -3.1; sd = sqrt((1.1^2 + 0.4^2 + 0.7^2) / 2) = sqrt(0.93) = 0.96437;
    # half = t(0.975, 2) 4.302653 * 0.96437 / sqrt(3) = 2.39562
    assert pooled.mean == pytest.approx(-3.1)
    assert (pooled.low, pooled.high) == (
        pytest.approx(-5.49562, abs=1e-4),
        pytest.approx(-0.70438, abs=1e-4),
    )
    assert (
        pooled_text("clat vs pgd_at", pooled)
        == "clat vs pgd_at: -3.1 points [-5.5, -0.7] over 3 seeds"
    )
    one = pooled_difference([1.25])
    assert (one.mean, one.low, one.high) == (1.25, None, None)
    assert pooled_text("x", one) == "x: +1.2 points over 1 seed"
    with pytest.raises(ValueError, match="no per-seed"):
        pooled_difference([])


def test_study_view_groups_seeds_by_arm_and_pairs_each_seed(study):
    assert list(arms(study, study.runs)) == ["clat", "pgd_at"]
    assert is_study(study, study.runs)
    rows = {(r["metric"], r["noise"]): r for r in paired_rows(study, study.runs)}
    assert set(rows) == {("accuracy", ""), ("robust_accuracy", "pgd_linf")}
    pgd = rows[("robust_accuracy", "pgd_linf")]
    assert pgd["seeds"] == [0, 1, 2] and pgd["base_arm"] == "pgd_at"
    assert pgd["differences"] == [-2.0, -3.5, -3.8]  # seed 2 read back from B = PGD-AT
    clean = rows[("accuracy", "")]
    # the cross-seed pair (pgd_at_s0 vs clat_s1, +9.0) is not used: mean (1.0 + 0.5 + 0) / 3
    assert clean["pooled"].mean == pytest.approx(0.5)
    html = study_html(study)
    assert "clat vs pgd_at, pgd_linf at eps 0.1: -3.1 points [-5.5, -0.7] over 3 seeds" in html
    assert "clat vs pgd_at, clean accuracy: +0.5 points [-0.7, +1.7] over 3 seeds" in html
    # per-arm means: clean (81 + 82.5 + 84) / 3 = 82.50, PGD (38 + 37.5 + 38.2) / 3 = 37.90;
    # PGD-AT: clean 82.00, PGD 41.00; trainable share 50 / 1000 = 5.0 % and 100.0 %
    table = re.sub(r"\s+", " ", html)
    for text in ("82.50", "37.90", "82.00", "41.00", "5.0%", "100.0%"):
        assert text in table


def test_one_seed_per_arm_is_no_study(study):
    one = ReportData(
        metrics=study.metrics[study.metrics["technique"].str.endswith("_s0")],
        cards=study.cards,
        comparisons=study.comparisons,
    )
    assert not is_study(one, one.runs)
    assert study_html(one) == ""


def test_the_study_preset_dry_run_plans_its_jobs(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    proc = run(
        ["snakemake", "-n", "-p", "--cores", "1", "--configfile", "presets/clat_study.yaml"], repo
    )
    out = proc.stdout + proc.stderr
    counts = dict(re.findall(r"^(train_snapshot|train|clat|attack|evaluate)\s+(\d+)$", out, re.M))
    # 3 PGD-AT runs (one per seed) keep their epoch-4 weights; 3 CLAT arms x 3 seeds and 4
    # labelled variants on seed 0 start there
    assert counts == {"train_snapshot": "3", "clat": "13", "attack": "32", "evaluate": "16"}
    assert out.count("--snapshot-epoch 4") == 3
    assert (
        '--init-dir "$(dirname models/fashion_mnist/wrn_10_2/pgd_at_s2/model.safetensors)"' in out
    )
    assert re.search(r"--technique pgd_at --variant pgd_at_s1 .* --seed 1 ", out)


@background.build("clat_variant_runs", after=["clat_stage_runs"])
def _clat_variant_runs(folder: Path, clat_stage_runs: dict) -> dict:
    """stages.train and stages.clat with --variant and seed 1, next to the fixture's runs."""
    tmp, common = clat_stage_runs["tmp"], list(clat_stage_runs["common"])
    common[common.index("--seed") + 1] = 1
    base = tmp / "models" / "toy" / "small_cnn" / "pgd_at_s1"
    _run("train", *common, "--arch-config", json.dumps({"width": 4, "hidden": 8}),
         "--technique", "pgd_at", "--variant", "pgd_at_s1",
         "--technique-config", json.dumps({"eps": 0.1, "steps": 2}),
         "--train-config", json.dumps(TRAIN_CONFIG), "--snapshot-epoch", 1, "--out-dir", base,
         cwd=REPO)  # fmt: skip
    out = tmp / "models" / "toy" / "small_cnn" / "clat_s1"
    _run("clat", *common, "--init-dir", base, "--init-epoch", 1, "--pretrain-technique",
         "pgd_at", "--variant", "clat_s1", "--clat-config", json.dumps(CLAT_CONFIG),
         "--train-config", json.dumps(TRAIN_CONFIG), "--out-dir", out,
         "--criticality-out", tmp / "results" / "clat_s1.parquet", cwd=REPO)  # fmt: skip
    return {"base": base, "out": out, "plain": (clat_stage_runs["base"], clat_stage_runs["out"])}


@pytest.fixture(scope="module")
def clat_variant_runs() -> dict:
    return background.result("clat_variant_runs")


def test_variant_cards_record_technique_variant_seed_and_pretrained_run(clat_variant_runs):
    """stages.train/stages.clat with --variant; without it (the fixture's runs) the cards hold
    no variant keys, as before variants."""
    base, out = clat_variant_runs["base"], clat_variant_runs["out"]
    trained = json.loads((base / "card.json").read_text())
    assert (trained["technique"], trained["variant"], trained["seed"]) == ("pgd_at", "pgd_at_s1", 1)
    card = json.loads((out / "card.json").read_text())
    assert (card["technique"], card["variant"], card["pretrained"], card["seed"]) == (
        "pgd_at+clat", "clat_s1", "pgd_at_s1", 1
    )  # fmt: skip
    assert variant_from_card("clat_s1", card).arm == "clat"
    for plain in clat_variant_runs["plain"]:
        assert not {"variant", "pretrained"} & set(json.loads((plain / "card.json").read_text()))
