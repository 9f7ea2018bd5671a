"""Natural and system noise figures, and the per-family summary bars."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from robustlab.metrics.natural import CORRUPTION_SETS
from robustlab.report.data import ReportData, Run
from robustlab.report.format import format_level, model_label
from robustlab.report.panels import (
    CORRUPTION_MEANS,
    corruption_set_label,
    evaluated_corruptions,
    panel_grid,
    present,
    sorted_runs,
)
from robustlab.report.style import Palette, model_legend

ADVERSARIAL_GROUP = "adversarial\n(mean robust acc.\nover attacks and eps)"
SYSTEM_GROUP = "system\n(mean acc. over\ndecoders, resizes)"


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _natural_group(set_name: str) -> str:
    return f"natural: {corruption_set_label(set_name)}\n(mean acc. over\ncorruptions, severities)"


def accuracy_by_noise_family(data: ReportData, palette: Palette) -> Figure:
    """Grouped bars per dataset: clean accuracy, mean robust accuracy over attacks and eps,
    the mean accuracy of each corruption set evaluated (ImageNet-C, its extras, geometric; never
    mixed) and mean system-noise accuracy, one bar per model."""
    corruption_specs = present(CORRUPTION_MEANS, data, data.runs)
    groups = [
        "clean",
        ADVERSARIAL_GROUP,
        *(_natural_group(spec.noise) for spec in corruption_specs),
        SYSTEM_GROUP,
    ]
    fig, axes = panel_grid(len(data.datasets_present), 1, (10, 3.8))
    for ax, dataset in zip(axes, data.datasets_present, strict=True):
        runs = sorted_runs(data, data.runs_of(dataset), palette)
        adv = data.rows(dataset=dataset, family="adversarial", metric="robust_accuracy")
        width = min(0.8 / max(len(runs), 1), 0.25)
        for i, run in enumerate(runs):
            mine = adv[(adv["arch"] == run[1]) & (adv["technique"] == run[2])]
            values = [
                data.value(run, "clean", "", None, "accuracy"),
                _mean(mine["value"].tolist()),
                *(spec.get(data, run) for spec in corruption_specs),
                data.value(run, "system", "all_variants", None, "mean_accuracy"),
            ]
            s = palette.style(run[1], run[2])
            xs = [g + width * (i + 0.5 - len(runs) / 2) for g in range(len(groups))]
            ax.bar(
                xs,
                [math.nan if v is None else v for v in values],
                width=width,
                color=s.color,
                hatch=s.hatch,
                edgecolor="black",
                linewidth=0.5,
            )
        ax.set_xticks(range(len(groups)), groups, fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{dataset}: accuracy by noise family", fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    _bar_legend(fig, palette, data)
    return fig


def _bar_legend(fig: Figure, palette: Palette, data: ReportData) -> None:
    from matplotlib.patches import Patch

    from robustlab.report.format import family_name

    handles = [Patch(facecolor="none", edgecolor="none", label="architecture (family)")]
    for arch in palette.ordered_archs(data.archs):
        family = family_name(data.arch_families.get(arch, "unknown"))
        handles.append(Patch(facecolor=palette.colors[arch], label=f"{arch} ({family})"))
    handles.append(Patch(facecolor="none", edgecolor="none", label="technique (hatch)"))
    for technique in data.techniques:
        s = palette.style(data.archs[0], technique)
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=s.hatch, label=technique))
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)


def _corruption_rows(data: ReportData, dataset: str):
    rows = data.rows(dataset=dataset, family="natural", metric="accuracy")
    return rows[rows["level"].notna()]


def _set_order(name: str) -> tuple[int, int, str]:
    """Sort key of a corruption: its set (CORRUPTION_SETS order), its place in the set."""
    for k, members in enumerate(CORRUPTION_SETS.values()):
        if name in members:
            return k, members.index(name), name
    return len(CORRUPTION_SETS), 0, name


def corruption_accuracy_vs_severity(data: ReportData, palette: Palette) -> Figure:
    """One panel per (dataset, corruption set): accuracy averaged over the set's corruptions
    against severity (0 = clean); the sets (ImageNet-C, its extras, geometric) are never mixed."""
    panels = []
    for dataset in data.datasets_present:
        for set_name in CORRUPTION_SETS:
            members = evaluated_corruptions(data, set_name, dataset)
            if members:
                panels.append((dataset, set_name, members))
    fig, axes = panel_grid(len(panels), 1, (7.5, 3.8))
    for ax, (dataset, set_name, members) in zip(axes, panels, strict=True):
        nat = _corruption_rows(data, dataset)
        nat = nat[nat["noise"].isin(members)]
        for run in sorted_runs(data, data.runs_of(dataset), palette):
            rows = nat[(nat["arch"] == run[1]) & (nat["technique"] == run[2])]
            if not len(rows):
                continue
            by_severity = rows.groupby("level", sort=True)["value"].mean()
            clean = data.value(run, "clean", "", None, "accuracy")
            s = palette.style(run[1], run[2])
            ax.plot(
                [0.0, *by_severity.index.tolist()],
                [math.nan if clean is None else clean, *by_severity.tolist()],
                color=s.color,
                marker=s.marker,
                linestyle=s.linestyle,
            )
        label = corruption_set_label(set_name)
        total = len(CORRUPTION_SETS[set_name])
        ax.set_ylim(-2, 102)
        ax.set_xticks([0.0, *sorted(set(nat["level"]))])
        ax.set_xlabel("corruption severity (0 = clean)")
        ax.set_ylabel(f"mean accuracy over\n{label} corruptions (%)")
        ax.set_title(
            f"{dataset}: {label} corruptions ({len(members)} of {total} evaluated)", fontsize=11
        )
        ax.grid(alpha=0.3)
    model_legend(fig, palette, data.archs, data.techniques, lines=True)
    return fig


def corruption_heatmap(data: ReportData, palette: Palette) -> Figure:
    """One heatmap per model: accuracy for each corruption (rows) and severity (columns)."""
    panels: list[tuple[Run, list[str], list[float], np.ndarray]] = []
    for dataset in data.datasets_present:
        nat = _corruption_rows(data, dataset)
        corruptions = sorted(set(nat["noise"].astype(str)), key=_set_order)
        severities = sorted(set(nat["level"].astype(float)))
        for run in sorted_runs(data, data.runs_of(dataset), palette):
            grid = np.full((len(corruptions), len(severities)), np.nan)
            for i, c in enumerate(corruptions):
                for j, s in enumerate(severities):
                    value = data.value(run, "natural", c, s, "accuracy")
                    if value is not None:
                        grid[i, j] = value
            if not np.isnan(grid).all():
                panels.append((run, corruptions, severities, grid))
    rows = max((len(p[1]) for p in panels), default=1)
    fig, axes = panel_grid(len(panels), 4, (3.3, 0.24 * rows + 1.6), legend_width=0.6)
    image = None
    for k, (ax, (run, corruptions, severities, grid)) in enumerate(zip(axes, panels, strict=True)):
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                v = grid[i, j]
                ax.text(
                    j,
                    i,
                    "–" if math.isnan(v) else f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="black" if not math.isnan(v) and v > 60 else "white",
                )
        ax.set_xticks(range(len(severities)), [format_level(s) for s in severities], fontsize=8)
        ax.set_xlabel("severity", fontsize=8)
        if k % 4 == 0:
            ax.set_yticks(range(len(corruptions)), corruptions, fontsize=7.5)
        else:
            ax.set_yticks(range(len(corruptions)), [""] * len(corruptions))
        ax.set_title(f"{run[0]}: {model_label(run[1], run[2])}", fontsize=8.5)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.5, label="accuracy (%)")
    return fig


def _dodged(
    ax,
    data: ReportData,
    palette: Palette,
    runs: list[Run],
    categories: list[str],
    value,
    lines: bool = False,
) -> None:
    """Markers per (category, model), models side by side within a category."""
    width = 0.7
    for i, run in enumerate(runs):
        offset = width * ((i + 0.5) / len(runs) - 0.5)
        ys = [value(run, c) for c in categories]
        xs = [k + offset for k in range(len(categories))]
        s = palette.style(run[1], run[2])
        ys_plot = [math.nan if y is None else y for y in ys]
        ax.plot(
            xs,
            ys_plot,
            color=s.color,
            marker=s.marker,
            markersize=5,
            linestyle="-" if lines else "none",
            linewidth=0.8,
            alpha=0.9,
            markeredgecolor="black",
            markeredgewidth=0.3,
        )
    for k in range(1, len(categories)):
        ax.axvline(k - 0.5, color="#dddddd", linewidth=0.8, zorder=0)
    ax.set_xlim(-0.5, len(categories) - 0.5)


def flip_probability(data: ReportData, palette: Palette) -> Figure:
    """Per dataset: flip probability per perturbation sequence and model (ImageNet-P style)."""
    datasets = [
        d for d in data.datasets_present if len(data.rows(dataset=d, metric="flip_probability"))
    ]
    fig, axes = panel_grid(len(datasets), 1, (9, 3.8))
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = data.rows(dataset=dataset, metric="flip_probability")
        perturbations = sorted(set(rows["noise"].astype(str)))
        categories = [*perturbations, "mean (mFP)"]
        runs = sorted_runs(data, data.runs_of(dataset), palette)

        def value(run: Run, c: str) -> float | None:
            if c == "mean (mFP)":
                return data.value(
                    run, "natural", "all_perturbations", None, "mean_flip_probability"
                )
            return data.value(run, "natural", c, None, "flip_probability")

        _dodged(ax, data, palette, runs, categories, value)
        ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("perturbation sequence")
        ax.set_ylabel("flip probability (%)\n(lower is more stable)")
        ax.set_title(f"{dataset}: prediction flips along perturbation sequences", fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    model_legend(fig, palette, data.archs, data.techniques)
    return fig


def system_noise_accuracy(data: ReportData, palette: Palette) -> Figure:
    """Per dataset: accuracy per decoder/resize variant, and its deviation from the model's
    mean over variants (the spread NSD summarises)."""
    datasets = [
        d
        for d in data.datasets_present
        if len(data.rows(dataset=d, family="system", metric="accuracy"))
    ]
    fig, axes = panel_grid(2 * len(datasets), 1, (11.0, 3.6))
    for k, dataset in enumerate(datasets):
        rows = data.rows(dataset=dataset, family="system", metric="accuracy")
        variants = sorted(set(rows["noise"].astype(str)))
        runs = sorted_runs(data, data.runs_of(dataset), palette)

        def acc(run: Run, v: str) -> float | None:
            return data.value(run, "system", v, None, "accuracy")

        def deviation(run: Run, v: str) -> float | None:
            mean = data.value(run, "system", "all_variants", None, "mean_accuracy")
            value = acc(run, v)
            return None if value is None or mean is None else value - mean

        for ax, getter, ylabel, title in (
            (axes[2 * k], acc, "accuracy (%)", "accuracy per variant"),
            (
                axes[2 * k + 1],
                deviation,
                "deviation (points)",
                "accuracy minus the model's mean over variants",
            ),
        ):
            _dodged(ax, data, palette, runs, variants, getter)
            ax.set_xticks(
                range(len(variants)),
                variants,
                rotation=40,
                ha="right",
                rotation_mode="anchor",
                fontsize=8,
            )
            ax.set_xlabel("variant: decoder-resize")
            ax.set_ylabel(ylabel, fontsize=9)
            ax.set_title(f"{dataset}: {title}", fontsize=10.5)
            ax.grid(axis="y", alpha=0.3)
        axes[2 * k + 1].axhline(0, color="black", linewidth=0.8)
    model_legend(fig, palette, data.archs, data.techniques)
    return fig
