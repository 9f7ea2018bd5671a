"""Paired comparisons between runs (results/comparisons.parquet): McNemar's exact test,
Newcombe's paired interval, the seeded paired bootstrap of mean corruption accuracy, the pair
orientation, the stage's table, and the report's sentence form."""

from __future__ import annotations

import argparse
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import stages.common
import stages.compare
import stages.report
from robustlab.io import write_frame
from robustlab.metrics.comparisons import (
    COLUMNS,
    IMAGENET_C,
    compare_runs,
    mcnemar_exact,
    newcombe_paired_interval,
    orient,
    paired_binary,
    paired_corruption_accuracy,
    paired_mean,
    run_pairs,
)
from robustlab.report import comparisons as report_comparisons
from robustlab.report.data import ReportData
from robustlab.report.html import render_report
from tests.test_report_fixtures import write_minimal_tree

REPO = Path(__file__).resolve().parents[1]
DATASET = "fashion_mnist"


# -- McNemar and Newcombe on hand-computed tables --------------------------------------------


def test_mcnemar_three_discordant_one_way_gives_p_one_quarter_both_directions() -> None:
    # 10 images; A correct on 0..6, B correct on all: 3 discordant pairs, all in B's favour.
    # Two-sided exact binomial test of 3 of 3 at 1/2: p = 2 * 0.5**3 = 0.25.
    a = np.arange(10) < 7
    b = np.ones(10, dtype=bool)
    stats = paired_binary(a, b)
    assert stats["p_value"] == 0.25
    assert stats["difference"] == pytest.approx(30.0)  # 100 * (10 - 7) / 10
    assert stats["n"] == 10
    # Newcombe: Wilson(7/10) = (0.396778, 0.892209), Wilson(10/10) = (0.722467, 1);
    # a margin (only_a + neither) is 0, so phi = 0:
    # low  = 0.3 - sqrt((1 - 0.722467)**2 + (0.892209 - 0.7)**2) = 0.3 - 0.337592 = -0.037592
    # high = 0.3 + sqrt((1 - 1)**2 + (0.7 - 0.396778)**2) = 0.3 + 0.303222 = 0.603222
    assert stats["ci_low"] == pytest.approx(-3.7592, abs=1e-3)
    assert stats["ci_high"] == pytest.approx(60.3222, abs=1e-3)
    # the other direction: the same p, the difference and interval mirrored
    back = paired_binary(b, a)
    assert back["p_value"] == 0.25 and back["difference"] == pytest.approx(-30.0)
    assert back["ci_low"] == pytest.approx(-60.3222, abs=1e-3)
    assert back["ci_high"] == pytest.approx(3.7592, abs=1e-3)


def test_mcnemar_without_discordant_pairs_is_one_and_one_discordant_pair_is_one() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 0) == 1.0  # 2 * 0.5**1
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)  # 2 * 0.5**5
    same = paired_binary(np.array([True, False, True]), np.array([True, False, True]))
    assert same["difference"] == 0.0 and same["p_value"] == 1.0


def test_newcombe_interval_matches_the_published_example() -> None:
    # Cavo et al. (2012), Fagerland, Lydersen & Laake's worked example (chapter 8): both 59,
    # first only 6, second only 16, neither 80; Newcombe square-and-add for first - second:
    # -0.0621 (-0.1186 to -0.0046). Here B - A with A the first: the mirror image.
    low, high = newcombe_paired_interval(59, 6, 16, 80)
    assert low == pytest.approx(0.0046, abs=5e-5)
    assert high == pytest.approx(0.1186, abs=5e-5)


def test_paired_binary_rejects_arrays_of_different_length() -> None:
    with pytest.raises(ValueError, match="equal length"):
        paired_binary(np.ones(3, bool), np.ones(4, bool))


# -- joining on the image index ---------------------------------------------------------------


def _clean(indices: range, correct: list[bool]) -> pd.DataFrame:
    idx = np.array(list(indices), dtype=np.int64)
    return pd.DataFrame(
        {
            "index": idx,
            "label": np.zeros(len(idx), np.int16),
            "prediction": np.zeros(len(idx), np.int16),
            "correct": correct,
        }
    )


def _no_outcomes(clean: pd.DataFrame) -> dict[str, pd.DataFrame]:
    natural = pd.DataFrame(columns=["corruption", "severity", "index", "correct"])
    return {"clean": clean, "adversarial": pd.DataFrame(), "natural": natural}


def test_only_images_both_runs_evaluated_count() -> None:
    # A evaluated images 0..9 (correct on 0..4), B images 5..14 (correct on 5..7 and 10..14).
    # Common images 5..9: A 0 of 5 correct, B 3 of 5 -> +60 points, n = 5, and McNemar on
    # 3 discordant pairs all for B: p = 0.25. (Over each run's own images: 50 % vs 80 %.)
    a = _clean(range(0, 10), [True] * 5 + [False] * 5)
    b = _clean(range(5, 15), [True] * 3 + [False] * 2 + [True] * 5)
    frame = compare_runs(
        DATASET, "small_cnn", "standard", "pgd_at", _no_outcomes(a), _no_outcomes(b),
        IMAGENET_C, "imagenet_c", seed=0,
    )  # fmt: skip
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 1  # no adversarial or corruption outcomes: no such rows
    row = frame.iloc[0]
    assert (row["metric"], row["noise"], math.isnan(row["level"])) == ("accuracy", "", True)
    assert row["difference"] == pytest.approx(60.0)
    assert row["n"] == 5 and row["p_value"] == 0.25


def test_a_repeated_image_is_an_error_naming_the_run() -> None:
    a = _clean(range(3), [True, True, False])
    b = pd.concat([a, a.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="clean outcomes of pgd_at: image index 0 appears twice"):
        compare_runs(
            DATASET, "small_cnn", "standard", "pgd_at", _no_outcomes(a), _no_outcomes(b),
            IMAGENET_C, "imagenet_c", seed=0,
        )  # fmt: skip


# -- mean corruption accuracy: seeded paired bootstrap ----------------------------------------


def _natural(cells: dict[tuple[str, int], list[bool]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {
                "corruption": corruption,
                "severity": np.int16(severity),
                "index": np.arange(len(correct), dtype=np.int64),
                "label": np.zeros(len(correct), np.int16),
                "prediction": np.zeros(len(correct), np.int16),
                "correct": correct,
            }
        )
        for (corruption, severity), correct in cells.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_corruption_difference_is_the_mean_of_per_image_means_over_imagenet_c() -> None:
    # 4 images, gaussian_noise and fog at severity 1 (ImageNet-C) and speckle_noise (not).
    # A: gaussian correct on images 0, 1; fog on none; speckle on all.
    #    per-image means over ImageNet-C cells: 0.5, 0.5, 0, 0
    # B: gaussian correct on all; fog on 0, 1, 2; speckle on none. means: 1, 1, 1, 0.5
    # paired differences: 0.5, 0.5, 1, 0.5 -> mean 0.625 -> +62.5 points, n = 4 images.
    # (With speckle_noise counted: A 2/3, 2/3, 1/3, 1/3 and B 2/3, 2/3, 2/3, 1/3 -> +8.33.)
    a = _natural(
        {
            ("gaussian_noise", 1): [True, True, False, False],
            ("fog", 1): [False] * 4,
            ("speckle_noise", 1): [True] * 4,
        }
    )
    b = _natural(
        {
            ("gaussian_noise", 1): [True] * 4,
            ("fog", 1): [True, True, True, False],
            ("speckle_noise", 1): [False] * 4,
        }
    )
    stats = paired_corruption_accuracy(a, b, IMAGENET_C, seed=0, resamples=500)
    assert stats["difference"] == pytest.approx(62.5)
    assert stats["n"] == 4
    assert 50.0 <= stats["ci_low"] <= 62.5 <= stats["ci_high"] <= 100.0
    # every difference is positive: a sign flip reaches |mean| >= 62.5 only with all four
    # signs equal (probability 2/16), so p is near 1/8 (Monte Carlo), not near 1
    assert 0.06 < stats["p_value"] < 0.2


def test_bootstrap_is_deterministic_for_the_same_seed() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random(50), rng.random(50)
    first = paired_mean(a, b, seed=3, resamples=2000)
    assert paired_mean(a, b, seed=3, resamples=2000) == first
    other = paired_mean(a, b, seed=4, resamples=2000)
    assert other["difference"] == first["difference"]  # the estimate needs no seed
    assert (other["ci_low"], other["p_value"]) != (first["ci_low"], first["p_value"])


def test_bootstrap_of_equal_and_of_constant_differences() -> None:
    same = paired_mean(np.full(5, 0.4), np.full(5, 0.4), seed=0, resamples=200)
    assert (same["difference"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)
    assert same["p_value"] == 1.0  # every flip reaches |0| >= 0
    # 20 images each +50 points: every resample has mean 50; a sign flip reaches 50 only with
    # all 20 signs equal (2 / 2**20), so with 999 resamples p = (1 + 0) / 1000
    up = paired_mean(np.zeros(20), np.full(20, 0.5), seed=0, resamples=999)
    assert (up["difference"], up["ci_low"], up["ci_high"]) == (50.0, 50.0, 50.0)
    assert up["p_value"] == pytest.approx(1 / 1000)
    with pytest.raises(ValueError, match="resamples"):
        paired_mean(np.zeros(2), np.zeros(2), seed=0, resamples=0)


# -- pairs and their orientation --------------------------------------------------------------


def test_pairs_of_one_arch_are_oriented_and_archs_are_never_mixed() -> None:
    techniques = ["pgd_at+clat", "standard", "pgd_at"]
    runs = [(DATASET, arch, t) for arch in ("small_cnn", "wrn_10_2") for t in techniques]
    runs.append(("cifar10", "small_cnn", "standard"))  # alone on its dataset: no pair
    pairs = run_pairs(runs)
    assert len(pairs) == 6
    for arch in ("small_cnn", "wrn_10_2"):
        mine = [(a[2], b[2]) for a, b in pairs if a[1] == arch]
        assert mine == [
            ("pgd_at", "pgd_at+clat"),  # CLAT minus the run it starts from
            ("standard", "pgd_at"),  # a technique minus standard training
            ("standard", "pgd_at+clat"),
        ]
    assert all(a[:2] == b[:2] for a, b in pairs)


def test_orientation_rules() -> None:
    assert orient("pgd_at+clat", "pgd_at") == ("pgd_at", "pgd_at+clat")
    assert orient("trades", "pgd_at+clat") == ("trades", "pgd_at+clat")  # CLAT is B
    assert orient("pgd_at", "standard") == ("standard", "pgd_at")
    assert orient("trades", "pgd_at") == ("pgd_at", "trades")  # alphabetical
    assert orient("trades+clat", "pgd_at+clat") == ("pgd_at+clat", "trades+clat")
    with pytest.raises(ValueError, match="itself"):
        orient("pgd_at", "pgd_at")


# -- the stage -------------------------------------------------------------------------------

N = 10
ATTACK_CELLS = {("fgsm", 1, 0.05), ("fgsm", 2, 0.1), ("pgd_linf", 2, 0.1)}
# per technique: images correct (index < k) clean and per (attack, eps); natural cells
CORRECT_BELOW = {
    "standard": {"clean": 8, ("fgsm", 0.05): 4, ("fgsm", 0.1): 2, ("pgd_linf", 0.1): 1},
    "pgd_at": {"clean": 7, ("fgsm", 0.05): 6, ("fgsm", 0.1): 5, ("pgd_linf", 0.1): 5},
    "pgd_at+clat": {"clean": 7, ("fgsm", 0.05): 6, ("fgsm", 0.1): 6, ("pgd_linf", 0.1): 6},
}
NATURAL_BELOW = {  # (corruption) -> images correct (index < k) at both severities
    "standard": {"gaussian_noise": 0, "fog": 0, "speckle_noise": N},
    "pgd_at": {"gaussian_noise": N, "fog": 0, "speckle_noise": 0},
    "pgd_at+clat": {"gaussian_noise": N, "fog": 5, "speckle_noise": 0},
}
ARCHS = ("small_cnn", "wrn_10_2")


def _write_results(root: Path) -> list[str]:
    idx = np.arange(N, dtype=np.int64)
    label = (idx % 10).astype(np.int16)
    runs = []
    for arch in ARCHS:
        for technique, below in CORRECT_BELOW.items():
            folder = root / DATASET / arch / technique
            clean_ok = idx < below["clean"]
            pred = np.where(clean_ok, label, (label + 1) % 10).astype(np.int16)
            clean = {"index": idx, "label": label, "prediction": pred, "correct": clean_ok}
            write_frame(pd.DataFrame(clean), folder / "clean.parquet")
            for attack in ("fgsm", "pgd_linf"):
                rows = []
                for name, level, eps in sorted(ATTACK_CELLS):
                    if name != attack:
                        continue
                    ok = idx < below[(attack, eps)]
                    rows.append(
                        pd.DataFrame(
                            {
                                "attack": attack,
                                "norm": "linf",
                                "level": np.int16(level),
                                "eps": eps,
                                "index": idx,
                                "label": label,
                                "clean_prediction": pred,
                                "prediction": np.where(ok, label, (label + 1) % 10),
                                "correct": ok,
                            }
                        )
                    )
                write_frame(pd.concat(rows), folder / "adversarial" / f"{attack}.parquet")
            natural = _natural(
                {
                    (corruption, severity): list(idx < k)
                    for corruption, k in NATURAL_BELOW[technique].items()
                    for severity in (1, 2)
                }
            )
            write_frame(natural, folder / "natural.parquet")
            runs.append(f"{DATASET}/{arch}/{technique}")
    return runs


def _args(root: Path, runs: list[str], out: Path) -> list[str]:
    args = ["--results-dir", str(root), "--attack", "fgsm", "--attack", "pgd_linf"]
    args += [item for run in runs for item in ("--run", run)]
    return [*args, "--seed", "0", "--resamples", "500", "--out", str(out)]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], pd.DataFrame]:
    root = tmp_path_factory.mktemp("results")
    runs = _write_results(root)
    out = root / "comparisons.parquet"
    stages.compare.main(_args(root, runs, out))
    return root, runs, pd.read_parquet(out)


def test_stage_writes_the_exact_columns_sorted(written) -> None:
    root, _, frame = written
    assert list(frame.columns) == COLUMNS
    schema = pq.read_schema(root / "comparisons.parquet")
    assert [str(schema.field(c).type) for c in COLUMNS] == ["string"] * 6 + ["double"] * 5 + [
        "int64"
    ]
    # 2 archs x 3 pairs x (clean + fgsm at 2 eps + pgd_linf at 1 eps + mean corruption)
    assert len(frame) == 2 * 3 * 5
    assert set(zip(frame["arch"], frame["arch"], strict=True)) == {(a, a) for a in ARCHS}
    keys = list(zip(frame["dataset"], frame["arch"], frame["run_a"], frame["run_b"], strict=True))
    assert keys == sorted(keys)
    assert set(frame["metric"]) == {"accuracy", "robust_accuracy", "mean_corruption_accuracy"}
    assert (frame["n"] == N).all()


def _row(frame: pd.DataFrame, arch: str, a: str, b: str, metric: str, noise: str, level=None):
    mask = (frame["arch"] == arch) & (frame["run_a"] == a) & (frame["run_b"] == b)
    mask &= (frame["metric"] == metric) & (frame["noise"] == noise)
    mask &= frame["level"].isna() if level is None else frame["level"] == level
    rows = frame[mask]
    assert len(rows) == 1
    return rows.iloc[0]


def test_stage_values_match_the_hand_computation(written) -> None:
    _, _, frame = written
    # standard (A) vs pgd_at (B). Clean: standard correct on images 0..7, pgd_at on 0..6: one
    # discordant pair, against B -> -10 points, p = 1.
    clean = _row(frame, "small_cnn", "standard", "pgd_at", "accuracy", "")
    assert (clean["difference"], clean["p_value"]) == (pytest.approx(-10.0), 1.0)
    # pgd_linf at 0.1: standard correct on 0, pgd_at on 0..4: 4 discordant for B ->
    # +40 points, p = 2 * 0.5**4 = 0.125
    pgd = _row(frame, "small_cnn", "standard", "pgd_at", "robust_accuracy", "pgd_linf", 0.1)
    assert (pgd["difference"], pgd["p_value"]) == (pytest.approx(40.0), 0.125)
    # mean corruption accuracy over ImageNet-C (gaussian_noise, fog; speckle_noise ignored):
    # standard 0 per image, pgd_at 0.5 per image -> +50 points on every image, interval [50, 50]
    nat = _row(frame, "small_cnn", "standard", "pgd_at", "mean_corruption_accuracy", "imagenet_c")
    assert (nat["difference"], nat["ci_low"], nat["ci_high"]) == (50.0, 50.0, 50.0)
    # CLAT vs pgd_at: fog correct on images 0..4 under CLAT -> per-image +0.5 on 5 images,
    # 0 on the others -> +25 points
    clat = _row(
        frame, "wrn_10_2", "pgd_at", "pgd_at+clat", "mean_corruption_accuracy", "imagenet_c"
    )
    assert clat["difference"] == pytest.approx(25.0)


def test_stage_output_is_byte_identical_on_a_rerun(written, tmp_path: Path) -> None:
    root, runs, _ = written
    again = tmp_path / "again.parquet"
    stages.compare.main(_args(root, runs, again))
    assert again.read_bytes() == (root / "comparisons.parquet").read_bytes()


def test_stage_imports_no_torch(written, tmp_path: Path) -> None:
    root, runs, _ = written
    code = (
        "import sys, stages.compare; stages.compare.main(sys.argv[1:]); "
        "print('torch' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *_args(root, runs, tmp_path / "c.parquet")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "False"


def test_stage_names_a_missing_table_and_a_repeated_run(written, tmp_path: Path) -> None:
    root, runs, _ = written
    with pytest.raises(FileNotFoundError, match=r"adversarial/cw_linf.parquet: missing"):
        stages.compare.main([*_args(root, runs, tmp_path / "x.parquet"), "--attack", "cw_linf"])
    with pytest.raises(ValueError, match="listed twice"):
        stages.compare.main(_args(root, [runs[0], runs[0]], tmp_path / "x.parquet"))


# -- the report ------------------------------------------------------------------------------


def _comparison_rows() -> pd.DataFrame:
    rows = [
        (DATASET, "small_cnn", "pgd_at", "pgd_at+clat", "robust_accuracy", "pgd_linf", 0.1,
         1.2, -0.8, 3.1, 0.24, 200),
        (DATASET, "small_cnn", "standard", "pgd_at", "accuracy", "", math.nan,
         -3.0, -5.25, -0.5, 0.0004, 200),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def test_sentence_reads_b_minus_a_with_interval_and_p() -> None:
    frame = _comparison_rows()
    assert report_comparisons.sentence(frame.iloc[0]) == (
        "pgd_at+clat vs pgd_at: +1.2 points [-0.8, +3.1], p = 0.24 (n = 200)"
    )
    assert report_comparisons.sentence(frame.iloc[1]) == (
        "pgd_at vs standard: -3.0 points [-5.2, -0.5], p < 0.001 (n = 200)"
    )
    assert report_comparisons.format_p(0.004) == "p = 0.004"
    assert report_comparisons.format_p(math.nan) == "p n/a"


def _png(width: int = 4, height: int = 3) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + bytes(5)


def test_report_shows_the_comparisons_and_highlights_clat(tmp_path: Path) -> None:
    tree = write_minimal_tree(tmp_path)
    path = tmp_path / "results" / "comparisons.parquet"
    write_frame(_comparison_rows(), path)
    parser = argparse.ArgumentParser()
    stages.common.add_input_arguments(parser)
    data = stages.common.read_inputs(
        parser.parse_args([*tree.input_args(), "--comparisons", str(path)])
    )
    figures = {name: _png() for name in data.figure_names()}
    page = render_report(data, figures, {"python": "3"})
    assert '<a href="#comparisons">Paired comparisons</a>' in page
    assert "pgd_at+clat vs pgd_at: +1.2 points [-0.8, +3.1], p = 0.24 (n = 200)" in page
    assert "pgd_at vs standard: -3.0 points [-5.2, -0.5], p &lt; 0.001 (n = 200)" in page
    section = report_comparisons.comparisons_section(data)
    assert section.count('<tr class="clat-pair">') == 1  # only X+clat vs X
    assert '<td data-sort="0.24">0.24</td>' in section  # the p column: the value alone
    assert '<td data-sort="0.0004">&lt; 0.001</td>' in section
    clat = report_comparisons.clat_comparisons_html(data)
    assert "fashion_mnist/small_cnn, pgd_linf at eps 0.1: pgd_at+clat vs pgd_at" in clat
    assert "standard" not in clat


def test_report_without_comparisons_says_how_to_get_them(tmp_path: Path) -> None:
    data = ReportData(metrics=pd.DataFrame())
    assert "rule compare" in report_comparisons.comparisons_section(data)
    assert report_comparisons.clat_comparisons_html(data) == ""
    data.comparisons = pd.DataFrame(columns=COLUMNS)
    assert "grid.techniques" in report_comparisons.comparisons_section(data)


def test_report_names_a_comparisons_table_without_the_columns(tmp_path: Path) -> None:
    tree = write_minimal_tree(tmp_path)
    path = tmp_path / "bad.parquet"
    write_frame(_comparison_rows().drop(columns=["p_value"]), path)
    parser = argparse.ArgumentParser()
    stages.common.add_input_arguments(parser)
    args = parser.parse_args([*tree.input_args(), "--comparisons", str(path)])
    with pytest.raises(ValueError, match=r"bad.parquet: lacks column\(s\) p_value; rerun"):
        stages.common.read_inputs(args)


def test_stage_with_one_technique_per_arch_writes_an_empty_table(written, tmp_path) -> None:
    root, runs, _ = written
    standard = [r for r in runs if r.endswith("/standard")]  # one run per architecture
    out = tmp_path / "empty.parquet"
    stages.compare.main(_args(root, standard, out))
    frame = pd.read_parquet(out)
    assert list(frame.columns) == COLUMNS and frame.empty
