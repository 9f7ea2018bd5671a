"""Adversarial figures: robust accuracy against eps per attack, the transfer-ASR heatmap."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from robustlab.report.data import ReportData
from robustlab.report.format import format_level, model_label
from robustlab.report.panels import grid_for, panel_grid, sorted_runs
from robustlab.report.style import Palette, model_legend


def robust_accuracy_vs_eps(data: ReportData, palette: Palette) -> Figure:
    """One panel per (dataset, attack): robust accuracy over all test images against eps; the
    point at eps 0 is the clean accuracy."""
    panels = [(d, a) for d in data.datasets_present for a in data.attacks(d)]
    fig, pairs = grid_for(panels, 3, (4.4, 3.4))
    for ax, (dataset, attack) in pairs:
        adv = data.rows(dataset=dataset, family="adversarial", noise=attack)
        adv = adv[adv["metric"] == "robust_accuracy"]
        for run in sorted_runs(data, data.runs_of(dataset), palette):
            rows = adv[(adv["arch"] == run[1]) & (adv["technique"] == run[2])]
            if not len(rows):
                continue
            rows = rows.sort_values("level")
            clean = data.value(run, "clean", "", None, "accuracy")
            xs = [0.0, *rows["level"].tolist()]
            ys = [math.nan if clean is None else clean, *rows["value"].tolist()]
            s = palette.style(run[1], run[2])
            ax.plot(xs, ys, color=s.color, marker=s.marker, linestyle=s.linestyle, alpha=0.9)
        ax.set_ylim(-2, 102)
        ax.set_xlabel(f"eps ({data.norm_label(attack)}, images in [0, 1])")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_title(f"{dataset}: {attack}", fontsize=11)
        ax.grid(alpha=0.3)
    model_legend(fig, palette, data.archs, data.techniques, lines=True)
    return fig


def transfer_asr(data: ReportData, palette: Palette) -> Figure:
    """Heatmaps of transfer ASR (source rows, target columns), one per (dataset, attack, eps)."""
    assert data.transfer is not None
    frame = data.transfer
    keys = sorted(
        {
            (str(d), str(a), float(e))
            for d, a, e in zip(frame["dataset"], frame["attack"], frame["eps"], strict=True)
        }
    )
    models = {
        d: [(r[1], r[2]) for r in sorted_runs(data, data.runs_of(d), palette)]
        for d in {k[0] for k in keys}
    }
    size = max(len(m) for m in models.values())
    side = 0.5 * size + 2.2
    ncols = 1 if size > 8 else 2  # large grids get the page's full width
    fig, axes = panel_grid(len(keys), ncols, (side + 0.8, side), legend_width=0.3)
    image = None
    for ax, (dataset, attack, eps) in zip(axes, keys, strict=True):
        order = models[dataset]
        pos = {m: i for i, m in enumerate(order)}
        grid = np.full((len(order), len(order)), np.nan)
        part = frame[(frame["dataset"] == dataset) & (frame["attack"] == attack)]
        part = part[part["eps"] == eps]
        for r in part.itertuples(index=False):
            s, t = (r.source_arch, r.source_technique), (r.target_arch, r.target_technique)
            if s in pos and t in pos and r.n > 0:
                grid[pos[s], pos[t]] = r.asr
        image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=100, aspect="equal")
        for i in range(len(order)):
            for j in range(len(order)):
                value = grid[i, j]
                text = "–" if math.isnan(value) else f"{value:.0f}"
                color = "white" if not math.isnan(value) and value > 60 else "black"
                weight = "bold" if i == j else "normal"
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=8, color=color, fontweight=weight
                )
        labels = [model_label(a, t) for a, t in order]
        ax.set_xticks(
            range(len(order)), labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=8
        )
        ax.set_yticks(range(len(order)), labels, fontsize=8)
        ax.set_xlabel("target model (evaluated)")
        ax.set_ylabel("source model (crafted on)")
        ax.set_title(f"{dataset}: {attack}, eps {format_level(eps)}", fontsize=11)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="transfer ASR (%)")
    return fig
