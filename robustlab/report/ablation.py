"""RobustResNet's block-ablation table (RobustResNet, Table 1): named ``robust_resnet`` variants
that differ in block options, with their complexity, clean and robust accuracy."""

from __future__ import annotations

import inspect
from typing import Any

from robustlab.report.data import ReportData, Run
from robustlab.report.format import format_level
from robustlab.report.tables import Cell, Column, number_cell, render_table, text_cell

BLOCK_OPTIONS = ("block", "preact", "cardinality", "scales", "se")


def resolved_block(options: dict[str, Any]) -> dict[str, Any]:
    """Block options of a ``robust_resnet*`` entry with the library's defaults filled in."""
    from robustlab.models.robust_resnet import robust_block_config, robust_resnet

    defaults = {
        k: p.default
        for k, p in inspect.signature(robust_resnet).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    keys = ("cardinality", "scales", "base_width", "se", "se_reduction", "activation", "norm")
    cfg = robust_block_config(
        options.get("block", defaults["block"]),
        preact=options.get("preact", defaults["preact"]),
        **{k: options.get(k, defaults.get(k)) for k in keys},
    )
    return {k: getattr(cfg, k) for k in (*BLOCK_OPTIONS, "activation", "norm")}


def ablation_archs(data: ReportData) -> dict[str, dict[str, Any]]:
    """``{arch: resolved block options}`` of the RobustResNet entries when at least two of them
    differ in block options; empty otherwise."""
    candidates = [
        a for a, o in data.arch_options.items() if str(o.get("arch", a)).startswith("robust_resnet")
    ]
    if len(candidates) < 2:
        return {}
    blocks = {a: resolved_block(data.arch_options[a]) for a in candidates}
    distinct = {tuple(b[k] for k in BLOCK_OPTIONS) for b in blocks.values()}
    return blocks if len(distinct) >= 2 else {}


def _mark(flag: bool, detail: str = "") -> Cell:
    text = ("✓ " + detail).strip() if flag else ""
    return Cell(text, "1" if flag else "0", True)


def _enhancements(b: dict[str, Any]) -> int:
    return sum([b["block"] != "basic", b["cardinality"] > 1, b["scales"] > 1, b["se"] != "none"])


def ablation_html(data: ReportData) -> str | None:
    """The table, or None when the grid has no block ablation."""
    blocks = ablation_archs(data)
    if not blocks:
        return None
    datasets = data.datasets_present
    attacks = {d: [(a, data.largest_eps(d, a)) for a in data.attacks(d)] for d in datasets}
    columns = [
        Column("arch", is_text=True),
        Column("technique", is_text=True),
        Column("Basic", "two kxk convolutions", is_text=True),
        Column("Bottle.", "bottleneck 1x1 - kxk - 1x1", is_text=True),
        Column("Aggr.", "aggregated convolution: cardinality (groups)", is_text=True),
        Column("Hier.", "hierarchical (Res2Net) convolution: scales", is_text=True),
        Column("SE", "squeeze-and-excitation: standard or residual", is_text=True),
        Column("pre-act", "pre-activation (norm-act before each conv)", is_text=True),
        Column("#P", "parameters"),
        Column("#F", "MACs per image"),
    ]
    for d in datasets:
        columns.append(Column(f"{d}: clean (%)"))
        columns += [Column(f"{d}: {a} @ {format_level(e)} (%)") for a, e in attacks[d] if e]
    runs: list[tuple[str, str]] = sorted(
        {(r[1], r[2]) for r in data.runs if r[1] in blocks},
        key=lambda m: (_enhancements(blocks[m[0]]), m[0], data.techniques.index(m[1])),
    )
    rows = []
    for arch, technique in runs:
        b = blocks[arch]
        first: Run = next(r for r in data.runs if r[1] == arch and r[2] == technique)
        row = [
            text_cell(arch),
            text_cell(technique),
            _mark(b["block"] == "basic"),
            _mark(b["block"] != "basic", "" if b["block"] == "bottleneck" else b["block"]),
            _mark(b["cardinality"] > 1, str(b["cardinality"])),
            _mark(b["scales"] > 1, str(b["scales"])),
            _mark(b["se"] != "none", b["se"]),
            _mark(bool(b["preact"])),
            number_cell(data.value(first, "complexity", "", None, "params"), "count"),
            number_cell(data.value(first, "complexity", "", None, "macs"), "count"),
        ]
        for d in datasets:
            run = (d, arch, technique)
            row.append(number_cell(data.value(run, "clean", "", None, "accuracy")))
            row += [
                number_cell(data.value(run, "adversarial", a, e, "robust_accuracy"))
                for a, e in attacks[d]
                if e
            ]
        rows.append(row)
    return render_table(columns, rows, table_id="block-ablation")
