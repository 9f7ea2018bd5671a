"""Paired comparisons in the report (``results/comparisons.parquet``): one table per dataset
and architecture, and each comparison as a sentence such as
``pgd_at+clat vs pgd_at: +1.2 points [-0.8, +3.1], p = 0.24 (n = 200)``, read as run B minus
run A (robustlab.metrics.comparisons orients every pair)."""

from __future__ import annotations

import math
from html import escape

import pandas as pd

from robustlab.report.data import ReportData
from robustlab.report.format import format_level
from robustlab.report.tables import Cell, Column, render_table, text_cell

HOW_TO_ENABLE = (
    "No paired comparisons: they need two or more techniques per architecture in "
    "grid.techniques and the table results/comparisons.parquet (rule compare)."
)
INTRO = (
    "<p>Every pair of runs of one dataset and architecture on the same test images: the "
    "difference is run B minus run A in percentage points, over the images both runs "
    "evaluated (n). Clean and robust accuracy: McNemar's exact test and Newcombe's 95 % score "
    "interval for paired proportions; mean corruption accuracy (per-image mean over the "
    "ImageNet-C corruptions and severities): a seeded paired bootstrap 95 % interval and a "
    "sign-flip permutation p-value. p-values are not corrected for the number of comparisons. "
    "CLAT rows (X+CLAT vs X) are highlighted.</p>"
)


def _points(value: float) -> str:
    """Signed points with one decimal (``+1.2``, ``-0.8``, ``+0.0``)."""
    return f"{value + 0.0:+.1f}"


def format_p(p: float) -> str:
    """``p = 0.24``, ``p = 0.003``, ``p < 0.001``; ``p n/a`` for NaN."""
    if math.isnan(p):
        return "p n/a"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


def _p_cell(p: float) -> str:
    """The p-value alone: ``0.24``, ``< 0.001``, ``n/a``."""
    return format_p(p).removeprefix("p = ").removeprefix("p ")


def metric_label(metric: str, noise: str, level: float) -> str:
    """``clean accuracy``, ``pgd_linf at eps 0.1``, ``mean corruption accuracy (imagenet_c)``."""
    if metric == "accuracy" and not noise:
        return "clean accuracy"
    if metric == "robust_accuracy":
        return f"{noise} at eps {format_level(level)}"
    if metric == "mean_corruption_accuracy":
        return f"mean corruption accuracy ({noise})"
    return f"{metric} {noise}".strip()


def interval_text(row: pd.Series) -> str:
    """``+1.2 points [-0.8, +3.1], p = 0.24``."""
    return (
        f"{_points(row['difference'])} points [{_points(row['ci_low'])}, "
        f"{_points(row['ci_high'])}], {format_p(row['p_value'])}"
    )


def sentence(row: pd.Series) -> str:
    """``B vs A: +1.2 points [-0.8, +3.1], p = 0.24 (n = 200)``: B minus A."""
    return f"{row['run_b']} vs {row['run_a']}: {interval_text(row)} (n = {int(row['n'])})"


def is_clat_pair(row: pd.Series, data: ReportData) -> bool:
    """A CLAT run (B) against the run it started from (A), as the cards say."""
    run_b = (str(row["dataset"]), str(row["arch"]), str(row["run_b"]))
    return data.pretrained_run(run_b) == (run_b[0], run_b[1], str(row["run_a"]))


def _rows(data: ReportData) -> pd.DataFrame | None:
    frame = data.comparisons
    return None if frame is None or frame.empty else frame


def comparisons_section(data: ReportData) -> str:
    """The section: per dataset and architecture, a table of every comparison."""
    frame = _rows(data)
    if frame is None:
        return f'<p class="note">{escape(HOW_TO_ENABLE)}</p>'
    parts = [INTRO]
    columns = [
        Column("B vs A", "run B minus run A", is_text=True),
        Column("metric", is_text=True),
        Column("difference (points)"),
        Column("95 % interval", is_text=True),
        Column("p", "two-sided; McNemar (exact) or sign-flip permutation"),
        Column("n", "images both runs evaluated"),
        Column("summary", is_text=True),
    ]
    for (dataset, arch), group in frame.groupby(["dataset", "arch"], sort=True):
        rows, attrs = [], []
        for _, row in group.iterrows():
            diff = float(row["difference"])
            rows.append(
                [
                    text_cell(f"{row['run_b']} vs {row['run_a']}"),
                    text_cell(metric_label(row["metric"], row["noise"], row["level"])),
                    Cell(_points(diff), repr(diff)),
                    text_cell(f"[{_points(row['ci_low'])}, {_points(row['ci_high'])}]"),
                    Cell(_p_cell(float(row["p_value"])), repr(float(row["p_value"]))),
                    Cell(str(int(row["n"])), str(int(row["n"]))),
                    text_cell(sentence(row), **{"class": "wrap"}),
                ]
            )
            attrs.append({"class": "clat-pair"} if is_clat_pair(row, data) else {})
        parts.append(f"<h3>{escape(f'{dataset}: {arch}')}</h3>")
        parts.append(render_table(columns, rows, row_attrs=attrs))
    return "\n".join(parts)


def clat_comparisons_html(data: ReportData) -> str:
    """CLAT's paired gains: one sentence per X+CLAT vs X comparison, or "" without any."""
    frame = _rows(data)
    if frame is None:
        return ""
    mask = [is_clat_pair(row, data) for _, row in frame.iterrows()]
    clat = frame[mask]
    if clat.empty:
        return ""
    items = []
    for (dataset, arch), group in clat.groupby(["dataset", "arch"], sort=True):
        for _, row in group.iterrows():
            label = metric_label(row["metric"], row["noise"], row["level"])
            items.append(f"<li>{escape(f'{dataset}/{arch}, {label}: {sentence(row)}')}</li>")
    return (
        "<h3>CLAT against the run it starts from (paired)</h3>"
        '<ul class="clat-comparisons">' + "".join(items) + "</ul>"
    )
