"""Figures and the self-contained HTML report drawn from a tiny metrics table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustlab.io import write_json
from robustlab.metrics.table import RunOutcomes, finalize_metrics, run_metrics, write_metrics
from robustlab.report.figures import FIGURE_NAMES, write_figures
from robustlab.report.html import leaderboard

REPO = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>"


def outcomes(clean_correct: list[bool], adv_correct: list[bool], nat_wrong: int) -> RunOutcomes:
    """4 images with labels 0-3; one attack at two eps, one corruption at two severities."""
    idx = np.arange(4, dtype=np.int64)
    label = idx.astype(np.int16)
    pred = np.where(clean_correct, label, 9).astype(np.int16)
    clean = pd.DataFrame(
        {"index": idx, "label": label, "prediction": pred, "correct": clean_correct}
    )
    adv = pd.concat(
        [
            pd.DataFrame(
                {
                    "attack": "pgd_linf",
                    "eps": eps,
                    "index": idx,
                    "label": label,
                    "clean_prediction": pred,
                    "prediction": np.where(adv_correct, label, 9).astype(np.int16),
                    "correct": np.array(adv_correct) & (eps < 0.2),
                    "linf": np.float32(eps),
                }
            )
            for eps in (0.05, 0.25)
        ],
        ignore_index=True,
    )
    nat = pd.concat(
        [
            pd.DataFrame(
                {
                    "corruption": "fog",
                    "severity": np.int16(s),
                    "index": idx,
                    "label": label,
                    "prediction": label,
                    "correct": idx >= min(nat_wrong + s - 1, 4),
                }
            )
            for s in (1, 2)
        ],
        ignore_index=True,
    )
    return RunOutcomes(clean=clean, adversarial=adv, natural=nat)


CARD = {"params": 2_500_000, "macs": 41_000_000, "trainable_params": 2_500_000}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    base = outcomes([True, True, True, False], [True, True, False, True], 2)
    evil = outcomes([True, True, True, True], [True, False, False, False], 1)
    frame = finalize_metrics(
        [
            run_metrics("fm", "cnn_a", "standard", base, CARD, baseline=base),
            run_metrics("fm", EVIL, "pgd_at", evil, CARD, baseline=base),
        ]
    )
    write_metrics(frame, root / "metrics.parquet")
    write_json({"arch": "cnn_a", "family": "cnn"}, root / "cards" / "a.json")
    write_json({"arch": EVIL, "family": "transformer"}, root / "cards" / "b.json")
    (root / "params.yaml").write_text("grid: <b>tiny</b>\n")
    return root


def run_stage(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def cards(root: Path) -> list[str]:
    return [str(root / "cards" / "a.json"), str(root / "cards" / "b.json")]


def test_figures_cli_writes_stable_pngs(tree: Path) -> None:
    out = tree / "figures"
    run_stage("stages.figures", "--metrics", str(tree / "metrics.parquet"), "--out-dir", str(out),
              "--cards", *cards(tree))  # fmt: skip
    for name in FIGURE_NAMES:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
        assert b"Software" not in data
    # In this process (other rcParams state possible): the same bytes.
    frame = pd.read_parquet(tree / "metrics.parquet")
    again = write_figures(frame, tree / "again", {"cnn_a": "cnn", EVIL: "transformer"})
    for path in again:
        assert path.read_bytes() == (out / path.name).read_bytes()


def test_leaderboard_values(tree: Path) -> None:
    header, rows = leaderboard(pd.read_parquet(tree / "metrics.parquet"), {"cnn_a": "cnn"})
    assert "robust acc. pgd_linf@0.05 (%)" in header and "mCE (%)" in header
    table = {row[1][0]: dict(zip(header, (c[0] for c in row), strict=True)) for row in rows}
    assert table["cnn_a"]["clean acc. (%)"] == "75.00"
    assert table["cnn_a"]["robust acc. pgd_linf@0.05 (%)"] == "75.00"
    assert table["cnn_a"]["WCAR@0.05 (%)"] == "66.67"
    assert table["cnn_a"]["mCE (%)"] == "100.00"
    assert table["cnn_a"]["params"] == "2.50M"
    assert table[EVIL]["arch family"] == "unknown"


def report(tree: Path, out: Path) -> str:
    run_stage("stages.report", "--metrics", str(tree / "metrics.parquet"),
              "--figures-dir", str(tree / "figures"), "--out", str(out), "--cards", *cards(tree),
              "--git-revision", "abc123", "--params-hash", "h-42",
              "--params-file", str(tree / "params.yaml"))  # fmt: skip
    return out.read_text(encoding="utf-8")


def test_report_is_self_contained_escaped_and_stable(tree: Path) -> None:
    if not (tree / "figures" / FIGURE_NAMES[0]).exists():
        write_figures(pd.read_parquet(tree / "metrics.parquet"), tree / "figures", {})
    page = report(tree, tree / "index.html")
    assert page.count("data:image/png;base64,") == 3
    assert "75.00" in page and "66.67" in page and "2.50M" in page
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>tiny</b>" not in page and "&lt;b&gt;tiny&lt;/b&gt;" in page
    assert "abc123" in page and "h-42" in page and "pandas" in page
    assert "http://" not in page and "https://" not in page
    assert page.count("<script>") == 1
    second = report(tree, tree / "index2.html")
    assert (tree / "index.html").read_bytes() == (tree / "index2.html").read_bytes()
    assert page == second
