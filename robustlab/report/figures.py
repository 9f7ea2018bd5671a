"""Figures drawn from the tidy metrics table (``results/metrics.parquet``).

Colour encodes the architecture family (cnn blue, transformer orange, mlp green, unknown grey;
one shade per architecture within its family), marker / line style / hatch encode the training
technique. Figures are built on ``matplotlib.figure.Figure`` (Agg, no pyplot state) under
matplotlib's default style, saved at a fixed dpi without the "Software" PNG tag, so identical
inputs give identical PNG bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib import style as mpl_style
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from robustlab.io import atomic_path

FIGURE_NAMES = (
    "accuracy_by_noise_family.png",
    "robust_accuracy_vs_eps.png",
    "corruption_accuracy_vs_severity.png",
)
DPI = 100
FAMILY_COLORMAPS = {"cnn": "Blues", "transformer": "Oranges", "mlp": "Greens"}
UNKNOWN_FAMILY_COLORMAP = "Greys"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")


@dataclass(frozen=True)
class Style:
    """How one model (arch/technique) is drawn."""

    label: str
    color: tuple[float, float, float, float]
    marker: str
    linestyle: str
    hatch: str


def arch_families_from_cards(cards: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``{arch: family}`` from model cards (``card.json`` objects with ``arch`` and ``family``)."""
    families: dict[str, str] = {}
    for card in cards:
        arch, family = str(card["arch"]), str(card["family"])
        if families.get(arch, family) != family:
            raise ValueError(f"architecture {arch!r} has two families: {families[arch]}, {family}")
        families[arch] = family
    return families


def model_styles(
    frame: pd.DataFrame, arch_families: Mapping[str, str]
) -> dict[tuple[str, str], Style]:
    """A deterministic style per (arch, technique) present in ``frame``."""
    models = sorted(
        set(zip(frame["arch"].astype(str), frame["technique"].astype(str), strict=True))
    )
    # "standard" first: it gets the plain style (solid line, circle, no hatch).
    techniques = sorted({t for _, t in models}, key=lambda t: (t != "standard", t))
    archs = sorted({a for a, _ in models})
    by_family: dict[str, list[str]] = {}
    for arch in archs:
        by_family.setdefault(arch_families.get(arch, "unknown"), []).append(arch)
    colors: dict[str, tuple[float, float, float, float]] = {}
    for family, members in by_family.items():
        cmap = matplotlib.colormaps[FAMILY_COLORMAPS.get(family, UNKNOWN_FAMILY_COLORMAP)]
        for i, arch in enumerate(members):
            shade = 0.7 if len(members) == 1 else 0.45 + 0.5 * i / (len(members) - 1)
            colors[arch] = tuple(float(v) for v in cmap(shade))  # type: ignore[assignment]
    styles = {}
    for arch, technique in models:
        t = techniques.index(technique)
        styles[(arch, technique)] = Style(
            label=f"{arch}/{technique} ({arch_families.get(arch, 'unknown')})",
            color=colors[arch],
            marker=MARKERS[t % len(MARKERS)],
            linestyle=LINESTYLES[t % len(LINESTYLES)],
            hatch=HATCHES[t % len(HATCHES)],
        )
    return styles


def _select(frame: pd.DataFrame, **equal: str) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for col, value in equal.items():
        mask &= frame[col] == value
    return frame[mask]


def _models_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(set(zip(frame["arch"].astype(str), frame["technique"].astype(str), strict=True)))


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def _clean(frame: pd.DataFrame, arch: str, technique: str) -> float:
    rows = _select(frame, arch=arch, technique=technique, family="clean", metric="accuracy")
    return _mean(rows["value"])


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _legend(fig: Figure, styles: Mapping[tuple[str, str], Style], kind: str) -> None:
    handles: list[Any] = []
    for style in styles.values():
        if kind == "bar":
            handles.append(
                Patch(
                    facecolor=style.color, hatch=style.hatch, edgecolor="black", label=style.label
                )
            )
        else:
            handles.append(
                Line2D(
                    [],
                    [],
                    color=style.color,
                    marker=style.marker,
                    linestyle=style.linestyle,
                    label=style.label,
                )
            )
    if handles:
        fig.legend(handles=handles, loc="outside right upper", title="model (arch/technique)")


def _datasets(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["dataset"].astype(str))) or ["(no data)"]


def accuracy_by_noise_family(frame: pd.DataFrame, arch_families: Mapping[str, str]) -> Figure:
    """Grouped bars per dataset: clean accuracy, mean adversarial robust accuracy (over attacks
    and eps) and mean corruption accuracy, one bar per model."""
    datasets = _datasets(frame)
    styles = model_styles(frame, arch_families)
    fig = Figure(figsize=(10, 3.6 * len(datasets)), layout="constrained")
    groups = [
        "clean",
        "adversarial\n(mean robust acc.\nover attacks and eps)",
        "natural\n(mean accuracy over\ncorruptions, severities)",
    ]
    for row, dataset in enumerate(datasets):
        ax = fig.add_subplot(len(datasets), 1, row + 1)
        data = _select(frame, dataset=dataset)
        models = _models_of(data)
        if not models:
            _empty(ax, "no metrics")
            continue
        width = min(0.8 / len(models), 0.25)
        for i, (arch, technique) in enumerate(models):
            mine = _select(data, arch=arch, technique=technique)
            values = [
                _clean(data, arch, technique),
                _mean(_select(mine, family="adversarial", metric="robust_accuracy")["value"]),
                _mean(
                    _select(mine, family="natural", noise="all_corruptions", metric="accuracy")[
                        "value"
                    ]
                ),
            ]
            style = styles[(arch, technique)]
            xs = [g + width * (i + 0.5 - len(models) / 2) for g in range(len(groups))]
            ax.bar(
                xs,
                values,
                width=width,
                color=style.color,
                hatch=style.hatch,
                edgecolor="black",
                linewidth=0.5,
            )
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{dataset}: accuracy by noise family")
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, styles, "bar")
    return fig


def robust_accuracy_vs_eps(frame: pd.DataFrame, arch_families: Mapping[str, str]) -> Figure:
    """One subplot per (dataset, attack): robust accuracy vs eps, eps 0 = clean accuracy."""
    datasets = _datasets(frame)
    styles = model_styles(frame, arch_families)
    adv = _select(frame, family="adversarial", metric="robust_accuracy")
    attacks = {d: sorted(set(_select(adv, dataset=d)["noise"].astype(str))) for d in datasets}
    ncols = max([len(a) for a in attacks.values()] + [1])
    fig = Figure(figsize=(4.2 * ncols + 3, 3.4 * len(datasets)), layout="constrained")
    for row, dataset in enumerate(datasets):
        if not attacks[dataset]:
            _empty(fig.add_subplot(len(datasets), ncols, row * ncols + 1), f"{dataset}: no attacks")
            continue
        data = _select(frame, dataset=dataset)
        for col, attack in enumerate(attacks[dataset]):
            ax = fig.add_subplot(len(datasets), ncols, row * ncols + col + 1)
            for arch, technique in _models_of(data):
                rows = _select(adv, dataset=dataset, arch=arch, technique=technique, noise=attack)
                if not len(rows):
                    continue
                rows = rows.sort_values("level")
                xs = [0.0, *rows["level"].tolist()]
                ys = [_clean(data, arch, technique), *rows["value"].tolist()]
                s = styles[(arch, technique)]
                ax.plot(xs, ys, color=s.color, marker=s.marker, linestyle=s.linestyle)
            ax.set_ylim(0, 102)
            ax.set_xlabel("eps (pixel scale, images in [0, 1])")
            ax.set_ylabel("robust accuracy (%)")
            ax.set_title(f"{dataset}: {attack}")
            ax.grid(alpha=0.3)
    _legend(fig, styles, "line")
    return fig


def corruption_accuracy_vs_severity(
    frame: pd.DataFrame, arch_families: Mapping[str, str]
) -> Figure:
    """One subplot per dataset: accuracy averaged over corruptions vs severity, 0 = clean."""
    datasets = _datasets(frame)
    styles = model_styles(frame, arch_families)
    nat = _select(frame, family="natural", metric="accuracy")
    nat = nat[nat["level"].notna()]
    fig = Figure(figsize=(9, 3.6 * len(datasets)), layout="constrained")
    for row, dataset in enumerate(datasets):
        ax = fig.add_subplot(len(datasets), 1, row + 1)
        mine = _select(nat, dataset=dataset)
        if not len(mine):
            _empty(ax, f"{dataset}: no corruptions")
            continue
        data = _select(frame, dataset=dataset)
        for arch, technique in _models_of(data):
            rows = _select(mine, arch=arch, technique=technique)
            if not len(rows):
                continue
            by_severity = rows.groupby("level", sort=True)["value"].mean()
            xs = [0.0, *by_severity.index.tolist()]
            ys = [_clean(data, arch, technique), *by_severity.tolist()]
            s = styles[(arch, technique)]
            ax.plot(xs, ys, color=s.color, marker=s.marker, linestyle=s.linestyle)
        ax.set_ylim(0, 102)
        ax.set_xticks([0.0, *sorted(set(mine["level"]))])
        ax.set_xlabel("corruption severity (0 = clean)")
        ax.set_ylabel("mean accuracy over corruptions (%)")
        ax.set_title(f"{dataset}: accuracy under natural corruptions")
        ax.grid(alpha=0.3)
    _legend(fig, styles, "line")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Save a PNG atomically with stable bytes (fixed dpi, no Software tag)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def write_figures(
    frame: pd.DataFrame, out_dir: str | os.PathLike[str], arch_families: Mapping[str, str]
) -> list[Path]:
    """Draw and write the three figures of ``FIGURE_NAMES`` into ``out_dir``; returns the paths."""
    builders = (accuracy_by_noise_family, robust_accuracy_vs_eps, corruption_accuracy_vs_severity)
    paths = []
    with mpl_style.context("default"):
        for name, build in zip(FIGURE_NAMES, builders, strict=True):
            path = Path(out_dir) / name
            save_figure(build(frame, arch_families), path)
            paths.append(path)
    return paths
