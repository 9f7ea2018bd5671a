"""Training figures: technique with/without per architecture, CLAT's training curves."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from robustlab.report.data import ReportData, Run
from robustlab.report.format import family_name
from robustlab.report.panels import (
    CLEAN,
    CORRUPTION_MEANS,
    SYSTEM_MEAN,
    attack_specs,
    panel_grid,
    present,
    wcar_spec,
)
from robustlab.report.style import Palette, technique_legend


def technique_comparison(data: ReportData, palette: Palette) -> Figure:
    """One panel per (dataset, arch) trained with two or more techniques: bars per technique
    for clean, robust (each attack at its largest eps), WCAR, the mean accuracy of each
    corruption set and system accuracy."""
    panels = []
    for dataset in data.datasets_present:
        runs = data.runs_of(dataset)
        specs = [CLEAN, *attack_specs(data, dataset)]
        wcar = data.rows(dataset=dataset, family="adversarial", metric="wcar")
        if len(wcar):
            specs.append(wcar_spec(float(wcar["level"].max())))
        specs = present([*specs, *CORRUPTION_MEANS, SYSTEM_MEAN], data, runs)
        for arch in palette.ordered_archs(r[1] for r in runs):
            techniques = [t for t in data.techniques if (dataset, arch, t) in set(runs)]
            if len(techniques) >= 2:
                panels.append((dataset, arch, techniques, specs))
    fig, axes = panel_grid(len(panels), 2, (6.4, 3.2), legend_width=1.8)
    for ax, (dataset, arch, techniques, specs) in zip(axes, panels, strict=True):
        width = 0.8 / len(techniques)
        for i, technique in enumerate(techniques):
            run = (dataset, arch, technique)
            values = [spec.get(data, run) for spec in specs]
            xs = [g + width * (i + 0.5 - len(techniques) / 2) for g in range(len(specs))]
            ax.bar(
                xs,
                [math.nan if v is None else v for v in values],
                width=width,
                color=palette.technique_color(technique),
                edgecolor="black",
                linewidth=0.4,
            )
        ax.set_xticks(range(len(specs)), [s.short for s in specs], fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        family = family_name(data.arch_families.get(arch, "unknown"))
        ax.set_title(f"{dataset}: {arch} ({family})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    technique_legend(fig, palette, data.techniques)
    return fig


def _base_history(data: ReportData, run: Run) -> tuple[pd.DataFrame | None, str]:
    """X's own history for an X+clat run, else X's epochs repeated in the CLAT history."""
    base = str(data.variant(run).pretrained)
    own = data.histories.get((run[0], run[1], base))
    if own is not None:
        return own, base
    card = data.cards.get(run, {})
    clat = data.histories.get(run)
    start = card.get("pretrain_epoch")
    if clat is None or start is None:
        return None, base
    return clat[clat["epoch"] <= int(start)], f"{base} (first {start} epochs)"


def clat_training_curves(data: ReportData, palette: Palette) -> Figure:
    """Per X+clat run: clean and PGD validation accuracy per epoch of X and of X+CLAT (which
    continues X's history after the pretraining epoch)."""
    runs = [r for r in data.clat_runs() if r in data.histories]
    panels = [(run, column) for run in runs for column in ("val_accuracy", "val_pgd_accuracy")]
    fig, axes = panel_grid(len(panels), 2, (4.8, 3.2), legend_width=0.2)
    titles = {
        "val_accuracy": "clean validation accuracy",
        "val_pgd_accuracy": "PGD validation accuracy",
    }
    for ax, (run, column) in zip(axes, panels, strict=True):
        dataset, arch, technique = run
        clat = data.histories[run]
        base, base_label = _base_history(data, run)
        color = palette.style(arch, technique).color
        if base is not None:
            ax.plot(
                base["epoch"],
                base[column],
                color="#777777",
                linestyle="--",
                marker="o",
                markersize=4,
                label=base_label,
            )
        ax.plot(
            clat["epoch"],
            clat[column],
            color=color,
            linestyle="-",
            marker="s",
            markersize=4,
            label=technique,
        )
        start = data.cards.get(run, {}).get("pretrain_epoch")
        if start is not None:
            ax.axvline(float(start), color="#b00020", linestyle=":", linewidth=1)
            ax.annotate(
                f"CLAT from epoch {int(start) + 1}",
                (float(start), 0.02),
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7.5,
                color="#b00020",
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        eps = data.cards.get(run, {}).get("train_config", {}).get("val_pgd_eps")
        extra = f" (eps {eps:g})" if column == "val_pgd_accuracy" and eps is not None else ""
        ax.set_title(f"{dataset}: {arch}, {titles[column]}{extra}", fontsize=9.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return fig
