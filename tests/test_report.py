"""Figures and the self-contained HTML report drawn from a small tree of tables written by the
tests (tests/test_report_fixtures.py): the figure plan, the leaderboard's numbers against
results/metrics.parquet, sanity flags, RobustResNet's and CLAT's tables, provenance, notes for
absent sections, determinism and clear errors."""

from __future__ import annotations

import argparse
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import stages.common
import stages.figures
import stages.report
from robustlab.registry import UnknownNameError
from robustlab.report import sanity as report_sanity
from robustlab.report.data import ReportData
from robustlab.report.figures import FIGURES, draw_figure, write_figures
from robustlab.report.figures_size import kendall_note
from robustlab.report.format import format_count, format_interval, format_percent
from robustlab.report.html import render_report
from robustlab.report.panels import rows_per_dataset
from robustlab.report.plan import ALL_FIGURES, figure_names, scaling_series, sweep_archs
from tests import background
from tests.pipeline_helpers import copy_repo, run
from tests.stage_cli import stage_command, stage_env
from tests.test_report_fixtures import (
    CHECKSUM,
    EVIL,
    N,
    Tree,
    write_minimal_tree,
    write_tree,
)

REPO = Path(__file__).resolve().parents[1]
BASE = ["accuracy_by_noise_family", "robust_accuracy_vs_eps", "metrics_vs_params"]
BASE += ["metrics_vs_macs"]


def _stage(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*stage_command(module), *args], cwd=REPO, env=stage_env(), capture_output=True, text=True
    )


def _data(tree: Tree) -> ReportData:
    parser = argparse.ArgumentParser()
    stages.common.add_input_arguments(parser)
    sanity = str(tree.root / "results" / "sanity.parquet")
    args = parser.parse_args([*tree.input_args(), "--sanity", sanity])
    test = tree.root / "data" / "prepared" / "fashion_mnist" / "test.parquet"
    return stages.common.read_inputs(args, [test])


@background.build("report_full_tree")
def _full_tree(folder: Path) -> tuple[Tree, str]:
    """The complete tree, its figures and its page drawn by the stages' commands."""
    tree = write_tree(folder)
    for done in (
        _stage("stages.figures", *tree.input_args(), "--out-dir", str(tree.root / "figures")),
        _stage("stages.report", *tree.report_args(), "--out", str(tree.root / "index.html")),
    ):
        assert done.returncode == 0, done.stderr
    return tree, (tree.root / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report_full_tree() -> tuple[Tree, str]:
    return background.result("report_full_tree")


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tree, str]:
    """One run; its figures drawn by the stage's command line."""
    tree = write_minimal_tree(tmp_path_factory.mktemp("minimal"))
    done = _stage("stages.figures", *tree.input_args(), "--out-dir", str(tree.root / "figures"))
    assert done.returncode == 0, done.stderr
    stages.report.main([*tree.report_args(), "--out", str(tree.root / "index.html")])
    return tree, (tree.root / "index.html").read_text(encoding="utf-8")


# -- the figure plan --------------------------------------------------------------------------


def test_plan_of_params_like_grids() -> None:
    default = {
        "robust_resnet_tiny": {"depths": [1, 1, 1], "scales": 4},
        "wrn_10_2": {},
        "vit_tiny": {"depth": 4},
    }
    names = figure_names(
        default,
        ["standard", "pgd_at", "trades", "pgd_at+clat"],
        transfer=True,
        corruptions=True,
        perturbations=True,
    )
    assert names == [
        *BASE[:2],
        "transfer_asr",
        *BASE[2:],
        "technique_comparison",
        "robust_scaling",
        "clat_training_curves",
        "corruption_accuracy_vs_severity",
        "corruption_heatmap",
        "flip_probability",
        "system_noise_accuracy",
    ]
    smallest = figure_names(
        {"small_cnn": {}}, ["standard"], transfer=False, corruptions=False, perturbations=False
    )
    assert smallest == [*BASE, "system_noise_accuracy"]


def test_sweep_and_scaling_series_rules() -> None:
    sweep = {
        "rrn_a": {"arch": "robust_resnet", "depths": [1, 1, 1]},
        "rrn_b": {"arch": "robust_resnet", "input_resolution": 24},
        "wrn_c": {"arch": "wrn", "depths": [1, 2, 1]},  # alone on its base: no sweep
        "small_cnn": {},
    }
    assert sweep_archs(sweep) == ["rrn_a", "rrn_b"]
    assert scaling_series("robust_resnet_a1", {}) == "RobustScaling"
    assert scaling_series("wrn_a2", {}) == "RobustScaling"
    assert scaling_series("robust_resnet", {"depths": [2, 2, 2]}) == "uniform scaling"
    assert scaling_series("robust_resnet", {"depths": [2, 2, 1]}) == "RobustScaling"
    assert scaling_series("wrn", {"depth": 28, "widen_factor": 10}) == "uniform scaling"
    assert scaling_series("wrn_28_10", {}) == "WRN baseline"
    assert scaling_series("vit_tiny", {}) is None
    # a RobustResNet alone (no second series) gets no scaling figure
    alone = figure_names(
        {"robust_resnet_a1": {}},
        ["standard"],
        transfer=False,
        corruptions=False,
        perturbations=False,
    )
    assert "robust_scaling" not in alone


def test_plan_of_the_config_equals_what_the_tables_support(
    report_full_tree: tuple[Tree, str],
) -> None:
    tree, _ = report_full_tree
    from_config = figure_names(
        tree.archs, tree.techniques, transfer=True, corruptions=True, perturbations=True
    )
    assert from_config == list(ALL_FIGURES)  # the full tree exercises every figure
    assert _data(tree).figure_names() == from_config
    drawn = sorted(p.stem for p in (tree.root / "figures").glob("*.png"))
    assert drawn == sorted(from_config)


def test_every_figure_is_registered_and_has_a_caption() -> None:
    assert FIGURES.names() == sorted(ALL_FIGURES)
    for name in ALL_FIGURES:
        caption = REPO / "workflow" / "report" / f"{name}.rst"
        assert caption.exists() and len(caption.read_text().split()) > 10, name


def test_snakefile_declares_the_plan_of_each_grid(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    smoke = run(["snakemake", "-n", "--cores", "1", "--configfile", "presets/smoke.yaml"], repo)
    planned = set(re.findall(r"reports/figures/(\w+)\.png", smoke.stdout))
    assert planned == {
        *BASE,
        "transfer_asr",
        "technique_comparison",
        "clat_training_curves",
        "corruption_accuracy_vs_severity",
        "corruption_heatmap",
        "flip_probability",
        "system_noise_accuracy",
    }


# -- figures --------------------------------------------------------------------------------


def test_figures_are_stable_pngs(minimal: tuple[Tree, str], tmp_path: Path) -> None:
    tree, _ = minimal
    names = _data(tree).figure_names()
    again = write_figures(_data(tree), tmp_path, names)
    assert len(again) == len(names) >= 5
    for path in again:
        data = (tree.root / "figures" / path.name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
        assert b"Software" not in data
        assert path.read_bytes() == data, path.name  # the CLI and this process: same bytes


def test_a_figure_without_data_is_an_error(minimal: tuple[Tree, str]) -> None:
    tree, _ = minimal
    data = _data(tree)
    with pytest.raises(ValueError, match="clat_training_curves.*no data"):
        draw_figure(data, "clat_training_curves")
    with pytest.raises(UnknownNameError, match="unknown figure 'nope'; known: .*transfer_asr"):
        draw_figure(data, "nope")
    done = _stage(
        "stages.figures",
        *tree.input_args(),
        "--out-dir",
        str(tree.root / "x"),
        "--names",
        "transfer_asr",
    )
    assert done.returncode != 0 and "figure 'transfer_asr' has no data" in done.stderr


def test_figures_stage_removes_figures_the_grid_no_longer_draws(
    minimal: tuple[Tree, str], tmp_path: Path
) -> None:
    tree, _ = minimal
    (tmp_path / "clat_training_curves.png").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    stages.figures.main(
        [*tree.input_args(), "--out-dir", str(tmp_path), "--names", "robust_accuracy_vs_eps"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "robust_accuracy_vs_eps.png"]


def test_every_dataset_starts_a_row_of_panels() -> None:
    panels = [("a", 1), ("a", 2), ("b", 1), ("c", 1), ("c", 2), ("c", 3), ("c", 4)]
    assert rows_per_dataset(panels, 3) == [
        ("a", 1),
        ("a", 2),
        None,
        ("b", 1),
        None,
        None,
        ("c", 1),
        ("c", 2),
        ("c", 3),
        ("c", 4),
    ]
    assert rows_per_dataset(panels[:2], 3) == panels[:2]


def test_kendall_tau_annotation() -> None:
    # pairs (1,1) (2,3) (3,2): 2 concordant, 1 discordant -> tau = 1/3; exact p = 1
    assert kendall_note([1, 2, 3], [1, 3, 2]) == "τ = 0.33 (p = 1, n = 3)"
    assert kendall_note([1, 2, 3, 4], [1, 2, 3, 4]).startswith("τ = 1.00")
    assert kendall_note([1, 2], [2, 1]) == "τ n/a (n = 2)"
    assert kendall_note([1, 1, 1], [1, 2, 3]) == "τ n/a (n = 3)"


# -- the page -------------------------------------------------------------------------------


class Cells(HTMLParser):
    """Rows of one table: per cell its attributes and text."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.depth = table_id, False, 0
        self.header: list[str] = []
        self.rows: list[tuple[dict, list[tuple[dict, str]]]] = []
        self._cell: tuple[dict, list[str]] | None = None
        self._ci: list[str] | None = None  # text of the cell's interval span (class "ci")

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == self.table_id:
            self.inside = True
        if not self.inside:
            return
        if tag == "span" and a.get("class") == "ci" and self._cell is not None:
            self._ci = []
        elif tag == "tr":
            self.rows.append((a, []))
        elif tag in ("td", "th"):
            self._cell = (a, [])

    def handle_endtag(self, tag: str) -> None:
        if not self.inside:
            return
        if tag == "span" and self._ci is not None and self._cell is not None:
            self._cell[0]["ci-text"] = "".join(self._ci)
            self._ci = None
        elif tag in ("td", "th") and self._cell is not None:
            attrs, text = self._cell
            if tag == "th":
                self.header.append("".join(text))
            else:
                self.rows[-1][1].append((attrs, "".join(text)))
            self._cell = None
        elif tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self._ci is not None:
            self._ci.append(data)
        elif self._cell is not None:
            self._cell[1].append(data)


def table(page: str, table_id: str) -> Cells:
    parser = Cells(table_id)
    parser.feed(page)
    parser.rows = [r for r in parser.rows if r[1]]
    assert parser.rows, f"no table {table_id}"
    return parser


def test_every_leaderboard_number_equals_the_metrics_table(
    report_full_tree: tuple[Tree, str],
) -> None:
    tree, page = report_full_tree
    metrics = pd.read_parquet(tree.metrics)
    lookup = {
        (
            r.dataset,
            r.arch,
            r.technique,
            r.family,
            r.noise,
            "" if pd.isna(r.level) else repr(float(r.level)),
            r.metric,
        ): r
        for r in metrics.itertuples(index=False)
    }
    board = table(page, "leaderboard-table")
    assert len(board.rows) == len(tree.runs)
    checked = intervals = 0
    for attrs, cells in board.rows:
        run = tuple(attrs["data-run"].split("/"))
        for cell, text in cells:
            if "data-metric" not in cell:
                continue
            family, noise, level, metric = cell["data-metric"].split("|")
            row = lookup[(*run, family, noise, level, metric)]
            value = row.value
            assert float(cell["data-value"]) == value
            shown = format_count(value) if family == "complexity" else format_percent(value)
            assert text == shown
            # the 95 % interval is shown under each number that has one, and only there
            if pd.isna(row.ci_low):
                assert "ci-text" not in cell and "data-ci-low" not in cell
            else:
                assert float(cell["data-ci-low"]) == row.ci_low
                assert float(cell["data-ci-high"]) == row.ci_high
                assert cell["ci-text"] == format_interval(row.ci_low, row.ci_high)
                assert int(cell["data-n"]) == row.n and f"n = {row.n} images" in cell["title"]
                intervals += 1
            checked += 1
    # 3 sizes, clean, 2 attacks x 3 eps + AutoAttack, 3 WCAR, 4 ImageNet-C (accuracy, mCE,
    # relative mCE, unnormalised mCE), 1 extras accuracy, mFP, mFR, 2 system
    assert checked == len(tree.runs) * 23
    # clean, 7 robust accuracies, 3 WCAR, ImageNet-C, extras and system accuracy carry an interval
    assert intervals == len(tree.runs) * 14


def test_leaderboard_shows_hand_computed_intervals(report_full_tree: tuple[Tree, str]) -> None:
    tree, page = report_full_tree
    board = table(page, "leaderboard-table")
    rows = {a["data-run"]: dict(zip(board.header, c, strict=True)) for a, c in board.rows}
    run = ("fashion_mnist", "wrn_10_2", "standard")
    c = tree.offsets[run]
    cell, text = rows["/".join(run)]["clean acc. (%)"]
    # clean accuracy: N - c of N images correct, so the Wilson interval of that proportion
    k = N - c
    z2n = 1.959963984540054**2 / N
    centre = (k / N + z2n / 2) / (1 + z2n)
    half = 1.959963984540054 / (1 + z2n) * ((k / N) * (1 - k / N) / N + z2n / (4 * N)) ** 0.5
    assert cell["ci-text"] == f"[{100 * (centre - half):.1f}, {100 * (centre + half):.1f}]"
    assert float(cell["data-ci-low"]) == pytest.approx(100 * (centre - half))
    assert text == f"{100 * k / N:.2f}" and cell["data-n"] == str(N)


def test_wcar_coverage_states_attacks_and_n_per_level(report_full_tree: tuple[Tree, str]) -> None:
    tree, page = report_full_tree
    cover = table(page, "wcar-coverage")
    rows = [[t for _, t in cells] for _, cells in cover.rows]
    # the fixture runs AutoAttack at the largest eps only: the smaller levels lack it
    assert [r[:5] for r in rows] == [
        ["fashion_mnist", "L-inf", "0.02", "fgsm, pgd_linf", "autoattack"],
        ["fashion_mnist", "L-inf", "0.05", "fgsm, pgd_linf", "autoattack"],
        ["fashion_mnist", "L-inf", "0.1", "autoattack, fgsm, pgd_linf", "none"],
    ]
    metrics = pd.read_parquet(tree.metrics)
    wcar = metrics[metrics["metric"] == "wcar"]
    for row, (_, group) in zip(rows, wcar.groupby("level", sort=True), strict=True):
        n = group["n"]
        assert row[5] == (str(n.min()) if n.min() == n.max() else f"{n.min()}–{n.max()}")
    board = table(page, "leaderboard-table")
    partial = [c for _, cells in board.rows for c, _ in cells if "partial" in c.get("class", "")]
    assert len(partial) == 2 * len(tree.runs)  # WCAR at the two smaller eps of every run
    assert all("autoattack not run at this eps" in c["title"] for c in partial)


def test_leaderboard_hand_computed_values(report_full_tree: tuple[Tree, str]) -> None:
    tree, page = report_full_tree
    board = table(page, "leaderboard-table")
    header = board.header
    rows = {tuple(a["data-run"].split("/"))[1:]: [t for _, t in c] for a, c in board.rows}
    run = ("fashion_mnist", "wrn_10_2", "standard")
    c = tree.offsets[run]
    row = dict(zip(header, rows[run[1:]], strict=True))
    assert row["clean acc. (%)"] == f"{100 * (N - c) / N:.2f}"
    # standard training: pgd_linf drops 3 images per eps level
    assert row["pgd_linf @ 0.05 (%)"] == f"{100 * (N - c - 6) / N:.2f}"
    assert row["AutoAttack @ 0.1 (%)"] == f"{100 * (N - c - 12) / N:.2f}"
    assert row["params"] == "303.00k" and row["family"] == "CNN"
    # corruption k of (gaussian_noise, fog, spatter) at severity s keeps images i >= c + s + k:
    # the ImageNet-C mean over k = 0, 1 and s = 1..3 is 100 (N - c - 2.5) / N; spatter (an
    # extra, k = 2) is averaged on its own, 100 (N - c - 4) / N, and never enters it.
    assert row["ImageNet-C acc. (%)"] == f"{100 * (N - c - 2.5) / N:.2f}"
    assert row["ImageNet-C extra acc. (%)"] == f"{100 * (N - c - 4) / N:.2f}"
    # the column titles say how many of the set's corruptions the means cover
    assert "mean corruption error over the 2 of 15 ImageNet-C corruptions evaluated" in page
    assert rows[("vit_tiny", "pgd_at+clat")][3] == "Transformer"


def test_failed_sanity_checks_mark_the_numbers_they_guard(
    report_full_tree: tuple[Tree, str],
) -> None:
    tree, page = report_full_tree
    board = table(page, "leaderboard-table")
    header = board.header
    by_run = {a["data-run"]: cells for a, cells in board.rows}
    bad = dict(zip(header, by_run["fashion_mnist/wrn_10_2/standard"], strict=True))
    good = dict(zip(header, by_run["fashion_mnist/wrn_10_2/pgd_at"], strict=True))
    for col in ("pgd_linf @ 0.1 (%)", "pgd_linf @ 0.02 (%)", "WCAR @ 0.1 (%)"):
        assert bad[col][0].get("class") == "guard-fail", col
        assert "standard_model_broken_by_pgd" in bad[col][0]["title"]
        assert good[col][0].get("class") != "guard-fail"
    assert bad["fgsm @ 0.1 (%)"][0].get("class") != "guard-fail"
    assert bad["clean acc. (%)"][0].get("class") != "guard-fail"
    assert bad["sanity checks"][1] == "2/3" and good["sanity checks"][1] == "3/3"
    anchor = re.search(r'href="#(sanity-run-\d+)">2/3<', page).group(1)
    assert f'id="{anchor}"' in page
    assert f"1 of {3 * len(tree.runs)} checks FAILED" in page  # three checks per run
    assert page.count("standard_model_broken_by_pgd") >= 3  # note, per model, failures table


def test_sanity_guard_mapping() -> None:
    attacks = ["autoattack", "fgsm", "pgd_linf"]
    assert report_sanity.guarded(
        "pgd_not_weaker_than_fgsm", "pgd_linf vs fgsm at eps 0.1", attacks
    ) == {"pgd_linf", "fgsm"}
    detail = "white-box pgd_linf vs fgsm transferred from a/b, eps 0.1"
    assert report_sanity.guarded("whitebox_not_weaker_than_transfer", detail, attacks) == {
        "pgd_linf"
    }
    assert report_sanity.guarded("budget_respected", "pgd_linf at eps 0.1", attacks) == {"*"}
    assert report_sanity.guarded("autoattack_flags", "pyautoattack raised", attacks) == {
        "autoattack"
    }
    assert report_sanity.guarded(
        "eps_zero_reproduces_clean", "pgd_linf at eps 0: 1 vs clean 1", attacks
    ) == {"pgd_linf", "clean"}
    assert report_sanity.guarded("new_check", "no attack named", attacks) == {"*"}


def test_block_ablation_table(report_full_tree: tuple[Tree, str]) -> None:
    _, page = report_full_tree
    ablation = table(page, "block-ablation")
    rows = [[t for _, t in cells] for _, cells in ablation.rows]
    header = ablation.header
    assert header[2:10] == ["Basic", "Bottle.", "Aggr.", "Hier.", "SE", "pre-act", "#P", "#F"]
    first = dict(zip(header, rows[0], strict=True))  # fewest enhancements first: the basic one
    assert first["arch"] == "rrn_d2-2-1_w1-1-1_k5_r28"
    assert (first["Basic"], first["Bottle."], first["SE"]) == ("✓", "", "")
    tiny = next(dict(zip(header, r, strict=True)) for r in rows if r[0].startswith("rrn_d1-2-2"))
    assert (tiny["Basic"], tiny["Bottle."], tiny["Aggr."], tiny["Hier."], tiny["SE"]) == (
        "",
        "✓",
        "✓ 4",
        "✓ 8",
        "✓ residual",
    )
    assert {r[0] for r in rows} == {
        "rrn_d1-1-1_w1-1-1_k3_r24",
        "rrn_d2-2-1_w1-1-1_k5_r28",
        "rrn_d1-2-2_w1-1-1_k3_r28",
    }


def test_clat_tables(report_full_tree: tuple[Tree, str]) -> None:
    _, page = report_full_tree
    crit = table(page, "clat-criticality")
    rows = {cells[0][1]: cells[1] for _, cells in crit.rows}
    # criticality = weakness ratios of the fixture: layer 4 (10), 6 (6), 2 (3), 3 (0.67), 5
    assert rows["wrn_10_2/pgd_at+clat"][0]["data-sort"] == "4, 6, 2, 3, 5"
    assert re.search(r"<b>4</b></span>, <span[^>]*><b>6</b></span>, <span[^>]*>2<", page)
    trainable = table(page, "clat-trainable")
    row = [t for _, t in trainable.rows[0][1]]
    assert row[1:5] == ["vit_tiny/pgd_at+clat", "679.00k", "33.95k", "5.0%"]
    assert "λ 0.1" in row[6] and "pretrained 2 epochs" in row[6]


def test_provenance_footer(report_full_tree: tuple[Tree, str]) -> None:
    tree, page = report_full_tree
    footer = page[page.index('<footer id="provenance">') :]
    for text in (
        CHECKSUM,
        "cd" * 32,
        "abc123",
        "h-42",
        "torch",
        "matplotlib",
        "28x28x1",
        "900 / 100",
        "attack fgsm (L-inf)",
        "0.02, 0.05, 0.1",
        "3 corruptions (2 of 15 ImageNet-C, 1 of 4 ImageNet-C extra)",
    ):
        assert text in footer, text
    assert f'data-sort="{N}">{N}</td>' in footer  # test images; attacks ran on N points


def test_page_is_self_contained_escaped_and_deterministic(
    report_full_tree: tuple[Tree, str],
) -> None:
    tree, page = report_full_tree
    assert "http://" not in page and "https://" not in page and "<link" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(ALL_FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert page.count("<script>") == 1
    data = _data(tree)
    figures = stages.report.read_figures(tree.root / "figures", data.figure_names())
    versions = stages.report.library_versions()
    provenance = {"git revision": "abc123", "params hash": "h-42"}
    assert render_report(data, figures, versions, provenance) == page
    # an architecture name with markup is escaped everywhere
    rename = {"vit_tiny": EVIL}
    evil = ReportData(
        metrics=data.metrics.assign(arch=data.metrics["arch"].replace(rename)),
        cards={
            (d, rename.get(a, a), t): {**c, "arch": rename.get(a, a)}
            for (d, a, t), c in data.cards.items()
        },
        histories={(d, rename.get(a, a), t): h for (d, a, t), h in data.histories.items()},
        criticality={(d, rename.get(a, a), t): f for (d, a, t), f in data.criticality.items()},
        transfer=data.transfer.replace(rename),
        sanity=data.sanity,
        datasets=data.datasets,
    )
    evil_page = render_report(evil, figures, versions, provenance)
    assert EVIL not in evil_page and "&lt;script&gt;alert(1)&lt;/script&gt;" in evil_page


def test_absent_sections_say_how_to_enable_them(minimal: tuple[Tree, str]) -> None:
    tree, page = minimal
    for hint in (
        "add a sweeps: entry to params.yaml",
        "add a technique X+clat",
        "list attacks under transfer.attacks",
        "add techniques to grid.techniques",
        "No block ablation",
        "No RobustScaling comparison",
    ):
        assert hint in page, hint
    shown = re.findall(r'<figure id="fig-(\w+)"', page)
    assert shown == _data(tree).figure_names()
    assert "transfer_asr" not in shown and "clat_training_curves" not in shown
    assert "All 3 checks passed." in page


def test_stage_errors_name_the_file(report_full_tree: tuple[Tree, str], tmp_path: Path) -> None:
    tree, _ = report_full_tree
    missing = _stage(
        "stages.report",
        *tree.report_args(),
        "--run",
        "fashion_mnist/nope/standard",
        "--out",
        str(tmp_path / "x.html"),
    )
    assert missing.returncode != 0
    assert "nope/standard/card.json: missing; it is written by stages.train" in missing.stderr
    bad = tmp_path / "metrics.parquet"
    pd.read_parquet(tree.metrics).assign(extra=1).to_parquet(bad)
    args = [a if a != str(tree.metrics) else str(bad) for a in tree.report_args()]
    done = _stage("stages.report", *args, "--out", str(tmp_path / "y.html"))
    assert done.returncode != 0 and f"{bad}: metrics table has unexpected column" in done.stderr
    data = _data(tree)
    figures = stages.report.read_figures(tree.root / "figures", data.figure_names())
    del figures["transfer_asr"]
    with pytest.raises(ValueError, match=r"figures missing: transfer_asr\.png"):
        render_report(data, figures, {})
    with pytest.raises(FileNotFoundError, match=r"nope\.png: missing; .*stages\.figures"):
        stages.report.read_figures(tree.root / "figures", ["nope"])
