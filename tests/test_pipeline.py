"""End to end: the smoke preset through DVC, and one grid through DVC and Snakemake alone.

The smoke preset's `dvc repro` (the session's ``smoke_reference``, tests/conftest.py) must give
tables, sanity checks, a transfer matrix and a report that honour their contracts. An independent
run of the TINY grid (tests/ops_helpers.py) through `snakemake` alone must give tables identical
to the session's ``tiny_reference`` run by `dvc repro`. The DVC remote round trip (push, fresh
clone, pull, a parameter change) is in tests/test_dvc_remote.py, on the TINY grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from robustlab.metrics.natural import CORRUPTION_SETS
from robustlab.metrics.table import METRICS_COLUMNS
from tests import background
from tests.ops_helpers import make_repo, smoke_config, tiny_config, tiny_runs
from tests.pipeline_helpers import REPO, run

pytestmark = pytest.mark.e2e

SMOKE = smoke_config()
ATTACKS = {name: p for name, p in SMOKE["attacks"].items() if p is not None}  # null: switched off
RUNS = [
    f"{d}/{a}/{t}"
    for d in SMOKE["grid"]["datasets"]
    for a in SMOKE["grid"]["architectures"]
    for t in SMOKE["grid"]["techniques"]
]


@pytest.fixture(scope="module")
def dvc_run(smoke_reference) -> dict[str, Path]:
    """The smoke grid run by `dvc repro` in a git + DVC repository (the session's reference)."""
    return {"repo": smoke_reference.repo}


@background.build("snakemake_run")
def _snakemake_run(folder: Path) -> Path:
    repo = make_repo(folder / "repo", tiny_config(), git=False)
    run(["snakemake", "--cores", "2"], repo)
    return repo


@pytest.fixture(scope="module")
def snakemake_run() -> Path:
    """An independent run of the TINY grid through Snakemake alone (no DVC, no output cache)."""
    return background.result("snakemake_run")


def test_metrics_table_honours_the_contract(dvc_run):
    repo = dvc_run["repo"]
    schema = pq.read_schema(repo / "results/metrics.parquet")
    assert schema.names == METRICS_COLUMNS
    types = [str(schema.field(c).type) for c in METRICS_COLUMNS]
    assert types == ["string"] * 5 + ["double", "string", "double", "int64", "double", "double"]
    metrics = pd.read_parquet(repo / "results/metrics.parquet")
    runs = {f"{r.dataset}/{r.arch}/{r.technique}" for r in metrics.itertuples()}
    assert runs == set(RUNS)
    assert set(metrics["family"]) == {
        "clean",
        "adversarial",
        "natural",
        "system",
        "complexity",
        "training",
    }
    test_size = SMOKE["datasets"]["fashion_mnist"]["test_size"]
    clean = metrics[metrics["family"] == "clean"]
    assert (clean["n"] == test_size).all() and clean["value"].between(0, 100).all()
    adversarial = metrics[metrics["metric"] == "robust_accuracy"]
    eps = SMOKE["datasets"]["fashion_mnist"]["eps"]
    assert sorted(set(adversarial["level"])) == pytest.approx(sorted(eps))
    assert set(adversarial["noise"]) == set(ATTACKS)
    natural = metrics[
        (metrics["family"] == "natural") & ~metrics["noise"].isin(list(CORRUPTION_SETS))
    ]
    assert set(natural["noise"]) >= set(SMOKE["corruptions"]["names"])
    assert metrics.loc[metrics["metric"] == "mce_unnormalised", "noise"].unique().tolist() == [
        "imagenet_c"
    ]
    assert set(natural.dropna(subset=["level"])["level"]) == {1.0, 2.0, 3.0, 4.0, 5.0}
    flips = metrics[metrics["metric"] == "flip_probability"]
    assert set(flips["noise"]) == set(SMOKE["perturbations"]["names"])
    assert set(metrics.loc[metrics["metric"] == "mfr", "arch"]) == set(
        SMOKE["grid"]["architectures"]
    )
    nsd = metrics[metrics["metric"] == "nsd"]
    assert len(nsd) == len(RUNS) and (nsd["value"] <= 0).all()


def test_per_example_outcomes_respect_the_budget(dvc_run):
    test_size = SMOKE["datasets"]["fashion_mnist"]["test_size"]
    for name in RUNS:
        for attack, params in ATTACKS.items():
            adv = pd.read_parquet(
                dvc_run["repo"] / "results" / name / "adversarial" / f"{attack}.parquet"
            )
            assert (adv["perturbation"] <= adv["eps"] * (1 + 1e-5) + 1e-6).all(), attack
            assert adv["pixel_min"].min() >= 0 and adv["pixel_max"].max() <= 1
            levels = 1 if params.get("levels") == "largest" else 3
            points = min(params.get("points") or test_size, test_size)
            assert len(adv) == levels * points, attack
            assert (adv["forward_passes"] > 0).all(), attack


def test_transfer_matrix_covers_every_ordered_pair(dvc_run):
    transfer = pd.read_parquet(dvc_run["repo"] / "results/transfer.parquet")
    pairs = set(
        transfer[["source_arch", "source_technique", "target_arch", "target_technique"]].itertuples(
            index=False, name=None
        )
    )
    models = {tuple(r.split("/")[1:]) for r in RUNS}
    assert pairs == {(*s, *t) for s in models for t in models}
    assert set(transfer["attack"]) == set(SMOKE["transfer"]["attacks"])
    assert transfer["asr"].between(0, 100).all() and (transfer["n"] > 0).all()


def test_sanity_checks_are_stored_and_reported(dvc_run):
    repo = dvc_run["repo"]
    sanity = pd.read_parquet(repo / "results/sanity.parquet")
    assert {tuple(r.split("/")) for r in RUNS} == set(
        sanity[["dataset", "arch", "technique"]].itertuples(index=False, name=None)
    )
    for name in ("eps_zero_reproduces_clean", "budget_respected", "pixel_range"):
        rows = sanity[sanity["check"] == name]
        assert len(rows) == len(RUNS) and rows["passed"].all(), rows
    expected = {
        "accuracy_non_increasing_in_eps",
        "large_eps_reaches_chance",
        "pgd_not_weaker_than_fgsm",
        "more_steps_not_weaker",
        "whitebox_not_weaker_than_transfer",
        "random_noise_weaker_than_pgd",
        "no_zero_input_gradients",
        "deterministic_forward",
        "outputs_are_logits",
        "autoattack_flags",
        "standard_model_broken_by_pgd",
        "whitebox_not_weaker_than_square",
        "fooled_confirmed_in_fp32",
    }
    assert expected <= set(sanity["check"])
    html = (repo / "reports/index.html").read_text()
    assert "Evaluation sanity checks" in html
    failed = sanity[~sanity["passed"]]
    assert (f"{len(failed)} of {len(sanity)} checks FAILED" in html) == bool(len(failed))


def test_reports_are_written(dvc_run):
    repo = dvc_run["repo"]
    html = (repo / "reports/index.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html.replace("http://www.w3", "")
    for run_name in RUNS:
        _, arch, technique = run_name.split("/")
        assert arch in html and technique in html
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics["fashion_mnist"]) == {r.split("/", 1)[1] for r in RUNS}
    for name in ("accuracy_by_noise_family", "robust_accuracy_vs_eps"):
        png = repo / "reports/figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dvc_and_snakemake_agree_nothing_is_left_to_do(dvc_run):
    repo = dvc_run["repo"]
    assert "up to date" in run(["dvc", "status"], repo).stdout
    dry = run(["snakemake", "-n", "--cores", "1"], repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    again = run(["dvc", "repro"], repo)
    assert "didn't change" in again.stdout or "up to date" in again.stdout


def _tables(repo: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted(repo.glob("**/*.parquet")):
        rel = path.relative_to(repo).as_posix()
        if rel.startswith((".snakemake", ".dvc")):
            continue
        frame = pd.read_parquet(path)
        if rel.endswith("history.parquet"):
            frame = frame.drop(columns=["seconds"])  # wall-clock time, the one honest difference
        tables[rel] = frame
    return tables


def test_identical_params_give_identical_tables(tiny_reference, snakemake_run):
    # two independent computations of the TINY grid: `dvc repro` and `snakemake` alone
    dvc_repo = tiny_reference.repo
    a, b = _tables(dvc_repo), _tables(snakemake_run)
    assert set(a) == set(b) and len(a) > 20
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
    metrics = "results/metrics.parquet"
    assert (dvc_repo / metrics).read_bytes() == (snakemake_run / metrics).read_bytes()
    assert (dvc_repo / "reports/metrics.json").read_text() == (
        snakemake_run / "reports/metrics.json"
    ).read_text()
    for run_name in tiny_runs():
        a_w = (dvc_repo / "models" / run_name / "model.safetensors").read_bytes()
        b_w = (snakemake_run / "models" / run_name / "model.safetensors").read_bytes()
        assert a_w == b_w, run_name


def test_snakemake_report_has_the_figures_with_captions(snakemake_run):
    out = snakemake_run / "smk_report.html"
    run(["snakemake", "--report", str(out)], snakemake_run)
    text = out.read_text(errors="replace")
    captions = (REPO / "workflow/report/robust_accuracy_vs_eps.rst").read_text().split()
    assert " ".join(captions[:6]) in text
    for name in ("accuracy_by_noise_family.png", "robust_accuracy_vs_eps.png", "index.html"):
        assert name in text


def _robust(metrics: pd.DataFrame, arch: str, technique: str, eps: float) -> float:
    row = metrics[
        (metrics["arch"] == arch)
        & (metrics["technique"] == technique)
        & (metrics["noise"] == "pgd_linf")
        & (metrics["metric"] == "robust_accuracy")
        & (metrics["level"] == eps)
    ]
    assert len(row) == 1
    return float(row["value"].iloc[0])


def test_adversarial_training_beats_standard_training_under_pgd(dvc_run):
    metrics = pd.read_parquet(dvc_run["repo"] / "results/metrics.parquet")
    eps = max(SMOKE["datasets"]["fashion_mnist"]["eps"])
    for arch in SMOKE["grid"]["architectures"]:
        gain = _robust(metrics, arch, "pgd_at", eps) - _robust(metrics, arch, "standard", eps)
        assert gain >= 10.0, f"{arch}: PGD-AT gains only {gain:.1f} points at eps {eps}"


def test_clat_trains_only_the_selected_layers(dvc_run):
    from safetensors.torch import load_file

    repo = dvc_run["repo"]
    clat_runs = [r for r in RUNS if r.endswith("+clat")]
    assert clat_runs
    for run_name in clat_runs:
        base_dir = repo / "models" / run_name.replace("+clat", "")
        card = json.loads((repo / "models" / run_name / "card.json").read_text())
        base_card = json.loads((base_dir / "card.json").read_text())
        assert base_card["snapshot_epochs"] == [card["pretrain_epoch"]]
        start = load_file(str(base_dir / "pretrain_snapshot.safetensors"))
        tuned = load_file(str(repo / "models" / run_name / "model.safetensors"))
        table = pd.read_parquet(repo / "results" / run_name / "criticality.parquet")
        selected = set(table[table["selected"]]["layer_name"])  # in any reselection
        last = table[table["epoch"] == table["epoch"].max()]
        selected_last = set(last[last["selected"]]["layer_name"])
        assert selected and len(last) > len(selected_last)
        trainable = 0
        for key, before in start.items():
            owner = key.rsplit(".", 1)[0]
            if owner in selected_last and key.endswith((".weight", ".bias")):
                trainable += before.numel()
            if owner in selected:
                continue
            assert tuned[key].equal(before), f"{run_name}: frozen {key} changed"
        assert any(not tuned[k].equal(start[k]) for k in start if k.rsplit(".", 1)[0] in selected)
        assert card["trainable_params"] == trainable
        assert card["trainable_params"] < card["params"]
