"""DVC-native results: the headline ``reports/metrics.json`` (stages.headline) and the tidy plot
files of ``reports/plots`` (stages.plots) that ``dvc plots show`` / ``dvc plots diff`` render.

The fixture tree (tests/test_report_fixtures.py) has N = 20 images; a run with offset c gets
image i right when i >= c, an attack of strength d at eps level j keeps image i when also
i >= c + d * j // 2 (adversarially trained runs; d: fgsm 2, pgd_linf 3, autoattack 4 at the
largest eps only), corruption k (gaussian_noise 0, fog 1, spatter 2) at severity s when
i >= c + s + k. Here: runs small_cnn/{pgd_at, pgd_at+clat, standard}; pgd_at has c = 3.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from robustlab.metrics.table import HEADLINE_KEYS, metrics_json
from robustlab.report.dvc_plots import PLOT_KINDS, to_csv, training_rows
from tests.pipeline_helpers import REPO, copy_repo, run
from tests.stage_cli import stage_command, stage_env
from tests.test_report_fixtures import DATASET, MINIMAL_ARCHS, Tree, write_tree

# the fixture's autoattack runs at the largest eps only: the partial-level WCAR warning
pytestmark = pytest.mark.filterwarnings("ignore:WCAR at:UserWarning")

PGD_AT = (DATASET, "small_cnn", "pgd_at")
CLAT = (DATASET, "small_cnn", "pgd_at+clat")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Tree:
    root = tmp_path_factory.mktemp("tree")
    return write_tree(
        root, MINIMAL_ARCHS, ("standard", "pgd_at"), clat_archs=("small_cnn",), transfer=False
    )


def _stage(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*stage_command(module), *args]
    return subprocess.run(
        cmd, cwd=REPO, env=stage_env(), capture_output=True, text=True, check=False
    )


def _run_args(tree: Tree) -> list[str]:
    return [arg for run in tree.runs for arg in ("--run", "/".join(run))]


# ---------------------------------------------------------------- headline metrics.json


def _metric_rows(rows: list[tuple]) -> pd.DataFrame:
    columns = ["dataset", "arch", "technique", "family", "noise", "level", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


NAN = float("nan")


def test_headline_keys_values_and_nulls_on_hand_made_tables() -> None:
    metrics = _metric_rows(
        [
            ("d", "a", "t", "clean", "", NAN, "accuracy", 91.23456),
            # the largest eps wins, whatever the row order
            ("d", "a", "t", "adversarial", "pgd_linf", 0.1, "robust_accuracy", 40.0),
            ("d", "a", "t", "adversarial", "pgd_linf", 0.05, "robust_accuracy", 60.0),
            ("d", "a", "t", "adversarial", "pgd_linf", 0.1, "ar", 44.0),
            ("d", "a", "t", "adversarial", "fgsm", 0.2, "robust_accuracy", 10.0),
            ("d", "a", "t", "adversarial", "autoattack", 0.1, "robust_accuracy", NAN),
            ("d", "a", "t", "adversarial", "all_attacks", 0.05, "wcar", 50.0),
            ("d", "a", "t", "adversarial", "all_attacks", 0.1, "wcar", 33.33333),
            ("d", "a", "t", "adversarial", "all_l2_attacks", 0.5, "wcar", 12.0),
            ("d", "a", "t", "natural", "imagenet_c", NAN, "mce", 80.0),
            ("d", "a", "t", "natural", "extra_corruptions", NAN, "mce", 70.0),
            ("d", "a", "t", "natural", "fog", 3.0, "accuracy", 55.0),
            ("d", "a", "t", "natural", "all_perturbations", NAN, "mfr", 120.5),
            ("d", "a", "t", "system", "all_variants", NAN, "nsd", -1.5),
            ("d", "a", "t", "complexity", "", NAN, "params", 26698.0),
            ("d", "a", "t", "complexity", "", NAN, "macs", 307648.0),
            ("d", "b", "t", "clean", "", NAN, "accuracy", 50.0),
        ]
    )
    sanity = pd.DataFrame(
        {
            "dataset": ["d", "d", "d", "d"],
            "arch": ["a", "a", "a", "c"],
            "technique": ["t", "t", "t", "t"],
            "check": ["x", "y", "z", "x"],
            "passed": [True, False, True, True],
        }
    )
    out = metrics_json(metrics, sanity, runs=[("e", "a", "t")])
    # a number the tables lack is left out (DVC drops null metrics)
    assert out == {
        "d": {
            "a/t": {
                "clean_accuracy": 91.2346,  # rounded to 4 decimals
                "pgd_linf_robust_accuracy": 40.0,  # eps 0.1, not 0.05
                # autoattack_robust_accuracy: a NaN value; relative_mce: no row
                "wcar": 33.3333,  # L-inf WCAR at the largest eps
                "mce": 80.0,  # the ImageNet-C set
                "mfr": 120.5,
                "nsd": -1.5,
                "params": 26698,
                "macs": 307648,
                "sanity_passed": 2,  # 2 of the 3 checks of d/a/t
                "sanity_total": 3,
            },
            "b/t": {"clean_accuracy": 50.0},  # no sanity rows: no counts
            "c/t": {"sanity_passed": 1, "sanity_total": 1},  # sanity rows only
        },
        "e": {"a/t": {}},  # a listed run without any rows
    }
    without_sanity = {k: v for k, v in out["d"]["a/t"].items() if not k.startswith("sanity")}
    assert metrics_json(metrics) == {"d": {"a/t": without_sanity, "b/t": out["d"]["b/t"]}}
    assert set(out["d"]["a/t"]) <= set(HEADLINE_KEYS) and len(HEADLINE_KEYS) <= 12
    with pytest.raises(ValueError, match="passed"):
        metrics_json(metrics, sanity.drop(columns="passed"))


def test_headline_stage_on_the_fixture_tree(tree: Tree, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "metrics.json"
    sanity = tree.root / "results" / "sanity.parquet"
    args = ["--metrics", str(tree.metrics), "--sanity", str(sanity), *_run_args(tree)]
    done = _stage("headline", *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert set(summary) == {DATASET}
    assert set(summary[DATASET]) == {
        "small_cnn/pgd_at",
        "small_cnn/pgd_at+clat",
        "small_cnn/standard",
    }
    for values in summary[DATASET].values():
        assert sorted(values) == sorted(HEADLINE_KEYS) and len(values) <= 12
    pgd_at = summary[DATASET]["small_cnn/pgd_at"]
    # c = 3: clean 17/20; at eps level 3 pgd_linf keeps i >= 3 + 9 // 2 = 7 (13/20), autoattack
    # i >= 3 + 12 // 2 = 9 (11/20); WCAR: every attack at level 3 keeps i >= 9, 11 of the 17
    # clean-correct images. Three sanity checks, all passed. small_cnn's card: params, MACs.
    assert {
        k: pgd_at[k] for k in HEADLINE_KEYS if k not in ("mce", "relative_mce", "mfr", "nsd")
    } == {
        "clean_accuracy": 85.0,
        "pgd_linf_robust_accuracy": 65.0,
        "autoattack_robust_accuracy": 55.0,
        "wcar": 64.7059,
        "params": 26698,
        "macs": 307648,
        "sanity_passed": 3,
        "sanity_total": 3,
    }
    # pgd_at is the fixture's mCE baseline (the first run): its normalised numbers are 100 %
    assert pgd_at["mce"] == pgd_at["relative_mce"] == 100.0
    assert pgd_at["mfr"] == 100.0 and pgd_at["nsd"] < 0

    # Without the sanity table: a warning and null counts, never a crash.
    again = tmp_path / "again.json"
    args = ["--metrics", str(tree.metrics), "--sanity", str(tmp_path / "absent.parquet")]
    done = _stage("headline", *args, "--out", str(again))
    assert done.returncode == 0 and "absent.parquet: missing" in done.stderr
    without = json.loads(again.read_text())[DATASET]["small_cnn/pgd_at"]
    assert without == {k: v for k, v in pgd_at.items() if not k.startswith("sanity")}

    done = _stage(
        "headline", "--metrics", str(tmp_path / "absent" / "metrics.parquet"), "--out", str(again)
    )
    assert done.returncode != 0 and "stages.aggregate" in done.stderr


# ---------------------------------------------------------------- plot files


def _write_plots(tree: Tree, out_dir: Path) -> subprocess.CompletedProcess[str]:
    args = ["--metrics", str(tree.metrics), "--models-dir", str(tree.root / "models")]
    args += ["--results-dir", str(tree.root / "results"), *_run_args(tree)]
    return _stage("plots", *args, "--out-dir", str(out_dir))


@pytest.fixture(scope="module")
def plots(tree: Tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "reports" / "plots"
    done = _write_plots(tree, out)
    assert done.returncode == 0, done.stderr
    return out


def _file(plots: Path, kind: str, run: tuple[str, str, str]) -> str:
    return (plots / kind / run[0] / run[1] / f"{run[2]}.csv").read_text()


def test_plot_files_have_the_exact_rows_of_the_tables(plots: Path) -> None:
    written = sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*.csv"))
    runs = ["small_cnn/pgd_at", "small_cnn/pgd_at+clat", "small_cnn/standard"]
    expected = [
        f"{kind}/{DATASET}/{run}.csv"
        for kind in ("accuracy_vs_severity", "robust_accuracy_vs_eps", "training")
        for run in runs
    ]
    assert written == sorted([*expected, f"criticality/{DATASET}/small_cnn/pgd_at+clat.csv"])
    # c = 3, robust halving: eps level j keeps i >= 3 + d * j // 2 (of 20 images)
    assert _file(plots, "robust_accuracy_vs_eps", PGD_AT) == (
        "series,eps,robust_accuracy\n"
        "autoattack,0.1,55\n"  # d = 4, j = 3: i >= 9
        "fgsm,0.02,80\n"  # d = 2: i >= 4, 5, 6
        "fgsm,0.05,75\n"
        "fgsm,0.1,70\n"
        "pgd_linf,0.02,80\n"  # d = 3: i >= 4, 6, 7
        "pgd_linf,0.05,70\n"
        "pgd_linf,0.1,65\n"
    )
    # corruption k at severity s keeps i >= 3 + s + k
    assert _file(plots, "accuracy_vs_severity", PGD_AT) == (
        "series,severity,accuracy\n"
        "fog,1,75\nfog,2,70\nfog,3,65\n"  # k = 1
        "gaussian_noise,1,80\ngaussian_noise,2,75\ngaussian_noise,3,70\n"  # k = 0
        "spatter,1,70\nspatter,2,65\nspatter,3,60\n"  # k = 2
    )
    # history base 30 + c = 33: train 33 + 5e, adversarial 33 + 2e, val 33 + 4e, PGD 16.5 + 3e
    assert _file(plots, "training", PGD_AT) == (
        "series,epoch,accuracy\n"
        "train_accuracy,1,38\ntrain_accuracy,2,43\ntrain_accuracy,3,48\n"
        "train_adv_accuracy,1,35\ntrain_adv_accuracy,2,37\ntrain_adv_accuracy,3,39\n"
        "val_accuracy,1,37\nval_accuracy,2,41\nval_accuracy,3,45\n"
        "val_pgd_accuracy,1,19.5\nval_pgd_accuracy,2,22.5\nval_pgd_accuracy,3,25.5\n"
    )
    # criticality = weakness ratio to the previous layer's (the first: its weakness); the two
    # largest (layer4: 0.2 / 0.02 = 10, layer6: 0.3 / 0.05 = 6) selected
    assert _file(plots, "criticality", CLAT) == (
        "series,layer_index,criticality,layer_name,selected\n"
        "epoch 3,1,0.01,layer1,false\n"
        "epoch 3,2,3,layer2,false\n"
        "epoch 3,3,0.666667,layer3,false\n"
        "epoch 3,4,10,layer4,true\n"
        "epoch 3,5,0.25,layer5,false\n"
        "epoch 3,6,6,layer6,true\n"
        "epoch 3,7,0.133333,layer7,false\n"
    )


def test_plot_files_are_byte_identical_and_stale_files_go(tree: Tree, plots: Path, tmp_path):
    out = tmp_path / "plots"
    stale = out / "training" / DATASET / "gone" / "standard.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("series,epoch,accuracy\n")
    assert _write_plots(tree, out).returncode == 0
    assert not stale.exists()
    first = {p.relative_to(plots): p.read_bytes() for p in sorted(plots.rglob("*.csv"))}
    second = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.csv"))}
    assert first == second
    assert not list(out.rglob("*.tmp"))  # written through a temporary name


def test_training_rows_leave_out_nan_epochs_and_name_missing_columns() -> None:
    history = pd.DataFrame(
        {
            "epoch": [2, 1],
            "train_accuracy": [60.0, 50.0],
            "train_adv_accuracy": [float("nan")] * 2,  # standard training
            "val_accuracy": [55.0, 45.0],
            "val_pgd_accuracy": [5.0, 1.0],
        }
    )
    assert to_csv(training_rows(history)) == (
        "series,epoch,accuracy\n"
        "train_accuracy,1,50\ntrain_accuracy,2,60\n"
        "val_accuracy,1,45\nval_accuracy,2,55\n"
        "val_pgd_accuracy,1,1\nval_pgd_accuracy,2,5\n"
    )
    with pytest.raises(ValueError, match="val_pgd_accuracy.*stages.train"):
        training_rows(history.drop(columns="val_pgd_accuracy"))


def test_plots_stage_names_a_missing_criticality_table(tree: Tree, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(tree.root / "results", results)
    (results / DATASET / "small_cnn" / "pgd_at+clat" / "criticality.parquet").unlink()
    args = ["--metrics", str(tree.metrics), "--models-dir", str(tree.root / "models")]
    done = _stage(
        "plots",
        *args,
        "--results-dir",
        str(results),
        *_run_args(tree),
        "--out-dir",
        str(tmp_path / "p"),
    )
    assert done.returncode != 0
    assert "criticality.parquet" in done.stderr and "stages.clat" in done.stderr


# ---------------------------------------------------------------- DVC renders them


def _dvc(repo: Path, *args: str) -> str:
    return run([sys.executable, "-m", "dvc", *args], repo).stdout


def _git(repo: Path, *args: str) -> None:
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], repo)


def _rendered(shown: dict) -> dict[str, list[dict]]:
    """plot id -> its data values, from `dvc plots show/diff --json` (the data plots; the
    PNG figures are image entries)."""
    assert not shown.get("errors"), shown.get("errors")
    return {
        plot_id: [v for entry in entries for v in entry["content"]["data"]["values"]]
        for plot_id, entries in shown["data"].items()
        if entries and entries[0]["type"] == "vega"
    }


def test_dvc_plots_show_and_diff_render_the_series(plots: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _dvc(repo, "init", "-q")
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")  # the project's plot declarations
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    shutil.copytree(plots, repo / "reports" / "plots")
    (repo / "reports" / "figures").mkdir()
    (repo / "reports" / "figures" / "f.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "plots")

    shown = _rendered(json.loads(_dvc(repo, "plots", "show", "--json")))
    eps_id = f"reports/plots/robust_accuracy_vs_eps/{DATASET}/small_cnn/pgd_at.csv"
    for kind in PLOT_KINDS:
        ids = [i for i in shown if i.startswith(f"reports/plots/{kind.name}/")]
        assert ids, f"{kind.name}: not rendered"
        for plot_id in ids:
            assert all(kind.x in v and kind.y in v for v in shown[plot_id]), plot_id
    values = shown[eps_id]
    assert {v["series"] for v in values} == {"autoattack", "fgsm", "pgd_linf"}
    assert {(v["series"], v["eps"], v["robust_accuracy"]) for v in values} >= {
        ("pgd_linf", "0.1", "65"),
        ("autoattack", "0.1", "55"),
    }
    crit_id = f"reports/plots/criticality/{DATASET}/small_cnn/pgd_at+clat.csv"
    assert [v["criticality"] for v in shown[crit_id]][3] == "10"

    # Another experiment's numbers: `dvc plots diff` overlays both revisions in one plot.
    changed = repo / eps_id
    changed.write_text(changed.read_text().replace("pgd_linf,0.1,65", "pgd_linf,0.1,50"))
    diff = json.loads(_dvc(repo, "plots", "diff", "HEAD", "--json"))
    [entry] = diff["data"][eps_id]
    assert sorted(entry["revisions"]) == ["HEAD", "workspace"]
    spec = entry["content"]
    assert spec["encoding"]["color"]["field"] == "series"
    assert spec["encoding"]["strokeDash"]["field"] == "rev"
    last = {
        v["rev"]: v["robust_accuracy"]
        for v in spec["data"]["values"]
        if v["series"] == "pgd_linf" and v["eps"] == "0.1"
    }
    assert last == {"HEAD": "65", "workspace": "50"}


# ---------------------------------------------------------------- the workflow builds them


@pytest.mark.parametrize("preset", [None, "presets/smoke.yaml"], ids=["params.yaml", "smoke"])
def test_dry_run_plans_the_headline_and_plots_jobs(preset, tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    args = ["snakemake", "-n", "-p", "--cores", "1"]
    if preset:
        args += ["--configfile", preset]
    proc = run(args, repo)
    text = proc.stdout + proc.stderr
    assert "rule headline:" in text and "rule plots:" in text
    assert "python -m stages.launch headline --metrics results/metrics.parquet" in text
    assert "--sanity results/sanity.parquet" in text
    assert "--out-dir reports/plots" in text
    config = yaml.safe_load((repo / (preset or "params.yaml")).read_text())
    clat_runs = [t for t in config["grid"]["techniques"] if t.endswith("+clat")]
    if clat_runs:
        assert "criticality.parquet" in text.split("rule plots:")[1].split("rule ")[0]
