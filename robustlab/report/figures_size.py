"""Robustness against model size (RobustART), RobustScaling (RobustResNet) and architecture
sweeps (RobustART's NAS study, with Kendall's tau)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from robustlab.report.data import ReportData, Run
from robustlab.report.panels import (
    CLEAN,
    MetricSpec,
    attack_specs,
    grid_for,
    panel_grid,
    robustness_specs,
    run_size,
    sorted_runs,
)
from robustlab.report.plan import SWEEP_AXES, arch_base, scaling_series, sweep_archs
from robustlab.report.style import Palette, model_legend, size_axis

# The attack the sweep figure plots (the sanity checks' reference; else the first attack).
REFERENCE_ATTACK = "pgd_linf"
SIZE_LABELS = {"params": "parameters", "macs": "MACs (multiply-accumulates per image)"}
SERIES_STYLE = {
    "RobustScaling": ("#08306b", "-"),
    "uniform scaling": ("#4292c6", "--"),
    "WRN baseline": ("#9e9e9e", ":"),
}


def _scatter(
    ax: Any, data: ReportData, palette: Palette, runs: Sequence[Run], spec: MetricSpec, size: str
) -> list[float]:
    xs = []
    for run in runs:
        x, y = run_size(data, run, size), spec.get(data, run)
        if x is None or y is None:
            continue
        s = palette.style(run[1], run[2])
        ax.scatter(
            [x],
            [y],
            color=s.color,
            marker=s.marker,
            s=42,
            edgecolors="black",
            linewidths=0.4,
            zorder=3,
        )
        xs.append(x)
    return xs


def metrics_vs_size(data: ReportData, palette: Palette, size: str) -> Figure:
    """One panel per (dataset, metric): each model's metric against its size."""
    panels = [(d, spec) for d in data.datasets_present for spec in robustness_specs(data, d)]
    fig, pairs = grid_for(panels, 3, (4.2, 3.3))
    multi = len(data.datasets_present) > 1
    for ax, (dataset, spec) in pairs:
        runs = sorted_runs(data, data.runs_of(dataset), palette)
        xs = _scatter(ax, data, palette, runs, spec, size)
        size_axis(ax, xs)
        ax.set_xlabel(SIZE_LABELS[size])
        ax.set_ylabel(spec.ylabel)
        title = f"{dataset}: {spec.title}" if multi else spec.title
        ax.set_title(title, fontsize=9.5, wrap=True)
        ax.grid(alpha=0.3)
    model_legend(fig, palette, data.archs, data.techniques)
    return fig


def metrics_vs_params(data: ReportData, palette: Palette) -> Figure:
    """RobustART's scatter of every metric against the parameter count."""
    return metrics_vs_size(data, palette, "params")


def metrics_vs_macs(data: ReportData, palette: Palette) -> Figure:
    """RobustART's scatter of every metric against MACs."""
    return metrics_vs_size(data, palette, "macs")


def robust_scaling(data: ReportData, palette: Palette) -> Figure:
    """Clean and robust accuracy (each attack at its largest eps) against MACs, one line per
    series (RobustScaling, uniform scaling, WRN baselines) and technique."""
    options = data.arch_options
    series = {a: scaling_series(arch_base(a, o), o) for a, o in options.items()}
    panels = [(d, spec) for d in data.datasets_present for spec in [CLEAN, *attack_specs(data, d)]]
    fig, pairs = grid_for(panels, 3, (4.4, 3.5))
    for ax, (dataset, spec) in pairs:
        xs_all: list[float] = []
        labelled: set[str] = set()  # each arch is named once per panel
        for technique in data.techniques:
            for name, (color, linestyle) in SERIES_STYLE.items():
                points = []
                for run in data.runs_of(dataset):
                    if run[2] != technique or series.get(run[1]) != name:
                        continue
                    x, y = run_size(data, run, "macs"), spec.get(data, run)
                    if x is not None and y is not None:
                        points.append((x, y, run[1]))
                if not points:
                    continue
                points.sort()
                marker = palette.style(points[0][2], technique).marker
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color=color,
                    linestyle=linestyle,
                    marker=marker,
                    markersize=6,
                )
                for x, y, arch in points:
                    if arch in labelled:
                        continue
                    labelled.add(arch)
                    offset = (4, 5) if len(labelled) % 2 else (4, -10)
                    ax.annotate(
                        arch,
                        (x, y),
                        textcoords="offset points",
                        xytext=offset,
                        fontsize=6.5,
                        color="#333333",
                    )
                xs_all += [p[0] for p in points]
        size_axis(ax, xs_all)
        ax.set_xlabel(SIZE_LABELS["macs"])
        ax.set_ylabel(spec.ylabel)
        ax.set_title(f"{dataset}: {spec.title}", fontsize=9.5)
        ax.grid(alpha=0.3)
    handles: list[Any] = [
        Line2D([], [], color=c, linestyle=ls, label=name)
        for name, (c, ls) in SERIES_STYLE.items()
        if name in set(series.values())
    ]
    handles += [
        Line2D(
            [], [], color="#444444", marker=palette.style("", t).marker, linestyle="none", label=t
        )
        for t in data.techniques
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, title="series / technique")
    return fig


def _kernel_sum(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return float(sum(value))
    return float(value)


def sweep_axes(data: ReportData, arch: str) -> dict[str, float | None]:
    """The sweep coordinates of an architecture: resolution, last-stage depth, kernel size."""
    options = data.arch_options.get(arch, {})
    card = data.arch_card(arch)
    depths = options.get("depths")
    resolution = options.get("input_resolution", card.get("image_size"))
    return {
        "input resolution (px)": None if resolution is None else float(resolution),
        "last-stage depth (blocks)": float(depths[-1]) if isinstance(depths, list) else None,
        "kernel size (sum over stages if per stage)": _kernel_sum(options.get("kernel_size")),
    }


def kendall_note(xs: Sequence[float], ys: Sequence[float]) -> str:
    """``τ = 0.33 (p = 0.6, n = 4)``: Kendall's tau of ``ys`` against ``xs``; ``n/a`` with
    fewer than three points or a constant axis."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return f"τ n/a (n = {len(xs)})"
    from scipy.stats import kendalltau  # only sweeps need it; importing scipy takes a while

    result = kendalltau(xs, ys)
    tau, p = float(result.statistic), float(result.pvalue)
    if math.isnan(tau):
        return f"τ n/a (n = {len(xs)})"
    return f"τ = {tau:.2f} (p = {p:.2g}, n = {len(xs)})"


def architecture_sweep(data: ReportData, palette: Palette) -> Figure:
    """Clean and robust accuracy of the sweep variants against size, input resolution,
    last-stage depth and kernel size (axes that vary), Kendall's tau per technique."""
    variants = set(sweep_archs(data.arch_options))
    coords = {a: sweep_axes(data, a) for a in variants}
    panels = []
    ncols = 1
    for dataset in data.datasets_present:
        runs = [r for r in data.runs_of(dataset) if r[1] in variants]
        attacks = attack_specs(data, dataset)
        robust = [s for s in attacks if s.noise == REFERENCE_ATTACK][:1] or attacks[:1]
        specs = [CLEAN, *robust]
        axes_x = ["params"] + [
            key
            for key in next(iter(coords.values()), {})
            if len({coords[a][key] for a in variants} - {None}) >= 2
        ]
        panels += [(dataset, runs, spec, x) for spec in specs for x in axes_x]
        ncols = max(ncols, len(axes_x))
    fig, axes = panel_grid(len(panels), ncols, (3.8, 3.4))
    for ax, (dataset, runs, spec, xkey) in zip(axes, panels, strict=True):
        notes = []
        xs_all = []
        for technique in data.techniques:
            pts = []
            for run in runs:
                if run[2] != technique:
                    continue
                x = run_size(data, run, "params") if xkey == "params" else coords[run[1]][xkey]
                y = spec.get(data, run)
                if x is not None and y is not None:
                    pts.append((x, y, run))
            if not pts:
                continue
            for x, y, run in pts:
                s = palette.style(run[1], run[2])
                ax.scatter(
                    [x],
                    [y],
                    color=s.color,
                    marker=s.marker,
                    s=40,
                    edgecolors="black",
                    linewidths=0.4,
                    zorder=3,
                )
            xs_all += [p[0] for p in pts]
            notes.append(f"{technique}: {kendall_note([p[0] for p in pts], [p[1] for p in pts])}")
        if xkey == "params":
            size_axis(ax, xs_all)
            ax.set_xlabel(SIZE_LABELS["params"])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(xkey)
        ax.set_ylabel(spec.ylabel)
        ax.set_title(f"{dataset}: {spec.title}\n" + "\n".join(notes), fontsize=8.5)
        ax.grid(alpha=0.3)
    techniques = {r[2] for r in data.runs if r[1] in variants}
    model_legend(fig, palette, variants, techniques)
    return fig


__all__ = [
    "SWEEP_AXES",
    "architecture_sweep",
    "metrics_vs_macs",
    "metrics_vs_params",
    "robust_scaling",
    "sweep_axes",
]
