"""The report's sections: each returns its HTML, or a one-line note saying how to enable it
when the grid has no data for it."""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from html import escape

from robustlab.report import ablation, clat, clat_study, comparisons, sanity
from robustlab.report.data import ReportData
from robustlab.report.format import format_level, model_label
from robustlab.report.leaderboard import abbreviations_html, leaderboard_html, wcar_coverage_html
from robustlab.report.tables import Column, entry_cell, number_cell, render_table, text_cell

CAPTIONS = {
    "accuracy_by_noise_family": "Clean accuracy, mean robust accuracy over attacks and eps, "
    "mean accuracy over the corruptions and severities of each corruption set evaluated "
    "(ImageNet-C's 15, its 4 extras, MNIST-C's geometric ones; never mixed), and mean accuracy "
    "over system-noise variants, one bar per model (colour: architecture, shaded within its "
    "family; hatch: technique).",
    "robust_accuracy_vs_eps": "Robust accuracy (percent of all attacked test images) against "
    "the attack budget eps in the attack's norm, pixel scale; the point at eps 0 is the clean "
    "accuracy.",
    "transfer_asr": "Transfer attack success rate: among images both the source and the target "
    "classify correctly, the percentage whose adversarial example crafted on the source fools "
    "the target. The bold diagonal is the white-box case; – marks pairs without common "
    "correct images.",
    "metrics_vs_params": "Each robustness metric against the number of parameters (RobustART): "
    "colour by architecture family (CNN blue, Transformer orange, MLP-Mixer green), marker by "
    "technique.",
    "metrics_vs_macs": "Each robustness metric against multiply-accumulates per image.",
    "technique_comparison": "Per architecture, the same metrics with and without each training "
    "technique.",
    "architecture_sweep": "Sweep variants: clean and PGD robust accuracy against size, input "
    "resolution, last-stage depth and kernel size (only axes the sweep varies). τ is Kendall's "
    "rank correlation between the axis and the accuracy over one technique's variants (p: its "
    "two-sided p-value).",
    "robust_scaling": "Clean and robust accuracy against MACs: RobustScaling (RobustResNet, "
    "WRN-A), uniform depth/width scaling, and the WRN baselines; lines join one series' models "
    "of one technique in MAC order.",
    "clat_training_curves": "Clean and PGD validation accuracy per epoch of X (dashed) and "
    "X+CLAT (solid), which starts from X's weights after the pretraining epoch (dotted line).",
    "corruption_accuracy_vs_severity": "Accuracy averaged over the corruptions of one set "
    "(ImageNet-C, its extras or the geometric ones; the title says how many of the set were "
    "evaluated) against severity; severity 0 is the clean accuracy.",
    "corruption_heatmap": "Accuracy (%) per corruption (rows) and severity (columns), one panel "
    "per model, on one colour scale.",
    "flip_probability": "Flip probability per perturbation sequence: the percentage of "
    "consecutive frames whose prediction changes (for noise sequences: differs from the first "
    "frame); mFP is the mean over sequences. Markers of one category are models side by side.",
    "system_noise_accuracy": "Accuracy on the same test images decoded and resized by "
    "different implementations (decoder-resize), and each value minus the model's mean over "
    "variants; NSD is minus the standard deviation of these values.",
}

HOW_TO_ENABLE = {
    "transfer": "No transfer results: list attacks under transfer.attacks in params.yaml.",
    "technique_comparison": "Only one training technique in the grid: add techniques to "
    "grid.techniques (e.g. standard and pgd_at) to compare training with and without them.",
    "architecture_sweep": "No architecture sweep in the grid: add a sweeps: entry to "
    'params.yaml (docs/architectures.md, "Architecture sweeps").',
    "robust_scaling": "No RobustScaling comparison: put a robust_resnet* architecture and WRN "
    "baselines (wrn_*) in grid.architectures.",
    "ablation": "No block ablation: define named variants of robust_resnet that differ in "
    "block, cardinality, scales or se under architectures: (e.g. rrn_basic: {arch: "
    "robust_resnet, block: basic}) and add them to grid.architectures.",
    "clat": "No CLAT run: add a technique X+clat (e.g. pgd_at+clat) to grid.techniques.",
    "corruptions": "No corruption results: list corruptions under corruptions.names in "
    "params.yaml.",
    "perturbations": "No perturbation-stability results: list sequences under "
    "perturbations.names in params.yaml.",
    "system": "No system-noise results: configure system_noise: in params.yaml.",
}


def note(key: str) -> str:
    return f'<p class="note">{escape(HOW_TO_ENABLE[key])}</p>'


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def figure_html(name: str, figures: Mapping[str, bytes]) -> str:
    """A figure embedded as a data URI with its caption."""
    png = figures[name]
    width, height = png_size(png)
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    caption = CAPTIONS.get(name, name)
    return (
        f'<figure id="fig-{name}"><img src="{uri}" alt="{escape(name)}" width="{width}" '
        f'height="{height}"><figcaption><b>{escape(name)}.png</b>: {escape(caption)}'
        "</figcaption></figure>"
    )


def _figure_or_note(name: str, figures: Mapping[str, bytes], key: str) -> str:
    return figure_html(name, figures) if name in figures else note(key)


def leaderboard_section(data: ReportData) -> str:
    return (
        "<p>One row per (dataset, architecture, technique). Click a column header to sort; "
        "hover a header for its definition. Cells outlined in red hold numbers a failed "
        "evaluation sanity check guards (hover for the check).</p>"
        + leaderboard_html(data)
        + abbreviations_html()
    )


def transfer_tables(data: ReportData) -> str:
    assert data.transfer is not None
    parts = []
    frame = data.transfer
    for (dataset, attack, eps), group in frame.groupby(["dataset", "attack", "eps"], sort=True):
        src = [
            model_label(a, t)
            for a, t in zip(group["source_arch"], group["source_technique"], strict=True)
        ]
        tgt = [
            model_label(a, t)
            for a, t in zip(group["target_arch"], group["target_technique"], strict=True)
        ]
        values = dict(zip(zip(src, tgt, strict=True), group["asr"], strict=True))
        targets = sorted(set(tgt))
        rows = [
            [text_cell(s), *(number_cell(values.get((s, t))) for t in targets)]
            for s in sorted(set(src))
        ]
        columns = [Column("source → target", is_text=True), *(Column(t) for t in targets)]
        title = f"{dataset}: {attack} at eps {format_level(float(eps))}"
        parts.append(
            f"<details><summary>{escape(title)} (table, %)</summary>"
            f"{render_table(columns, rows, sortable=False)}</details>"
        )
    return "\n".join(parts)


def adversarial_section(data: ReportData, figures: Mapping[str, bytes]) -> str:
    parts = [sanity.failures_note(data), figure_html("robust_accuracy_vs_eps", figures)]
    coverage = wcar_coverage_html(data)
    if coverage:
        parts += [
            "<h3>WCAR coverage</h3>",
            "<p>Per eps, the attacks whose per-image worst case WCAR takes and n, the "
            "clean-correct images every one of them evaluated (an attack run on a subset of "
            "points bounds it). A level missing an attack run at other eps is optimistic.</p>",
            coverage,
        ]
    parts.append("<h3>Transferability</h3>")
    if data.has_transfer():
        parts += [figure_html("transfer_asr", figures), transfer_tables(data)]
    else:
        parts.append(note("transfer"))
    return "\n".join(p for p in parts if p)


def size_section(data: ReportData, figures: Mapping[str, bytes]) -> str:
    parts = [figure_html("metrics_vs_params", figures), figure_html("metrics_vs_macs", figures)]
    parts += [
        "<h3>Training techniques</h3>",
        _figure_or_note("technique_comparison", figures, "technique_comparison"),
    ]
    parts += [
        "<h3>Architecture sweeps</h3>",
        _figure_or_note("architecture_sweep", figures, "architecture_sweep"),
    ]
    return "\n".join(parts)


def robust_resnet_section(data: ReportData, figures: Mapping[str, bytes]) -> str:
    parts = ["<h3>RobustScaling</h3>", _figure_or_note("robust_scaling", figures, "robust_scaling")]
    parts.append("<h3>Block ablation (RobustResNet, Table 1)</h3>")
    table = ablation.ablation_html(data)
    if table is None:
        parts.append(note("ablation"))
    else:
        parts += [
            "<p>RobustResNet variants differing in block topology: basic or bottleneck block, "
            "aggregated convolution (cardinality), hierarchical convolution (scales), SE kind; "
            "#P parameters, #F MACs; accuracy at each attack's largest eps.</p>",
            table,
        ]
    return "\n".join(parts)


def clat_section(data: ReportData, figures: Mapping[str, bytes]) -> str:
    if not data.clat_runs():
        return note("clat")
    return "\n".join(
        [
            figure_html("clat_training_curves", figures),
            "<h3>Top-5 criticality indices (CLAT, Table 3)</h3>",
            "<p>Layers in forward order of Conv2d and Linear modules, most critical first (last "
            "selection); bold layers were fine-tuned by CLAT. Hover an index for the layer's "
            "name and criticality.</p>",
            clat.criticality_html(data),
            "<h3>Trainable parameters during CLAT (CLAT, Table 6)</h3>",
            clat.trainable_html(data),
            comparisons.clat_comparisons_html(data),
            clat_study.study_html(data),
        ]
    )


def corruption_tables(data: ReportData) -> str:
    """Per model, a corruption x severity accuracy table with CE columns when present."""
    parts = []
    for run in data.runs:
        nat = data.rows(
            dataset=run[0], arch=run[1], technique=run[2], family="natural", metric="accuracy"
        )
        nat = nat[nat["level"].notna()]
        if not len(nat):
            continue
        severities = sorted(set(nat["level"].astype(float)))
        has_ce = data.value(run, "natural", str(nat["noise"].iloc[0]), None, "ce") is not None
        columns = [Column("corruption", is_text=True)]
        columns += [Column(f"severity {format_level(s)}") for s in severities]
        columns += [Column("mean")]
        columns += [Column("CE (%)"), Column("relative CE (%)")] if has_ce else []
        rows = []
        for corruption in sorted(set(nat["noise"].astype(str))):
            entries = [data.entry(run, "natural", corruption, s, "accuracy") for s in severities]
            have = [e.value for e in entries if e is not None]
            row = [text_cell(corruption), *(entry_cell(e) for e in entries)]
            row.append(number_cell(sum(have) / len(have) if have else None))
            if has_ce:
                row += [
                    number_cell(data.value(run, "natural", corruption, None, m))
                    for m in ("ce", "relative_ce")
                ]
            rows.append(row)
        label = f"{run[0]}: {model_label(run[1], run[2])}"
        parts.append(
            f"<details><summary>{escape(label)}</summary>{render_table(columns, rows)}</details>"
        )
    return "\n".join(parts)


def natural_section(data: ReportData, figures: Mapping[str, bytes]) -> str:
    parts = ["<h3>Corruptions</h3>"]
    if data.has_corruptions():
        parts += [
            figure_html("corruption_accuracy_vs_severity", figures),
            figure_html("corruption_heatmap", figures),
            "<p>Accuracy per corruption and severity, per model (%):</p>",
            corruption_tables(data),
        ]
    else:
        parts.append(note("corruptions"))
    parts.append("<h3>Perturbation stability</h3>")
    parts.append(_figure_or_note("flip_probability", figures, "perturbations"))
    return "\n".join(parts)


def system_section(data: ReportData, figures: Mapping[str, bytes]) -> str:
    return _figure_or_note("system_noise_accuracy", figures, "system")


def summary_section(figures: Mapping[str, bytes]) -> str:
    return figure_html("accuracy_by_noise_family", figures)
