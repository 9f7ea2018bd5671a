"""How models are drawn: one hue per architecture family, one shade per architecture, one
marker and line style per technique; legends and deterministic PNG output.

CNN blue, Transformer orange, MLP-Mixer green, unknown grey. Figures use
``matplotlib.figure.Figure`` (Agg, no pyplot state) under matplotlib's default style, saved at a
fixed dpi without the "Software" PNG tag, so identical inputs give identical PNG bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from robustlab.io import atomic_path
from robustlab.report.format import family_name, format_count

DPI = 100
FAMILY_COLORMAPS = {"cnn": "Blues", "transformer": "Oranges", "mlp": "Greens"}
UNKNOWN_FAMILY_COLORMAP = "Greys"
FAMILY_ORDER = ("cnn", "transformer", "mlp", "unknown")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
# Techniques in bar charts where every bar is one architecture: greys, then hues that are not
# the families' (purple, red, brown, pink, olive, cyan).
TECHNIQUE_COLORS = (
    "#bdbdbd",
    "#525252",
    "#7b3294",
    "#d7301f",
    "#8c510a",
    "#e7298a",
    "#808000",
    "#17becf",
)


@dataclass(frozen=True)
class Style:
    """How one model (arch/technique) is drawn."""

    color: tuple[float, float, float, float]
    marker: str
    linestyle: str
    hatch: str


def family_color(family: str) -> tuple[float, float, float, float]:
    """The representative colour of an architecture family."""
    cmap = matplotlib.colormaps[FAMILY_COLORMAPS.get(family, UNKNOWN_FAMILY_COLORMAP)]
    return tuple(float(v) for v in cmap(0.7))  # type: ignore[return-value]


def arch_colors(arch_families: Mapping[str, str]) -> dict[str, tuple[float, float, float, float]]:
    """One shade of its family's hue per architecture (darker for later names)."""
    by_family: dict[str, list[str]] = {}
    for arch in sorted(arch_families):
        by_family.setdefault(arch_families[arch], []).append(arch)
    colors = {}
    for family, members in by_family.items():
        cmap = matplotlib.colormaps[FAMILY_COLORMAPS.get(family, UNKNOWN_FAMILY_COLORMAP)]
        for i, arch in enumerate(members):
            shade = 0.7 if len(members) == 1 else 0.45 + 0.5 * i / (len(members) - 1)
            colors[arch] = tuple(float(v) for v in cmap(shade))
    return colors  # type: ignore[return-value]


class Palette:
    """Styles of the archs and techniques of one report (stable across figures)."""

    def __init__(self, arch_families: Mapping[str, str], techniques: Sequence[str]) -> None:
        self.arch_families = dict(arch_families)
        self.techniques = list(techniques)
        self.colors = arch_colors(self.arch_families)

    def technique_index(self, technique: str) -> int:
        return self.techniques.index(technique) if technique in self.techniques else 0

    def style(self, arch: str, technique: str) -> Style:
        t = self.technique_index(technique)
        return Style(
            color=self.colors.get(arch, (0.5, 0.5, 0.5, 1.0)),
            marker=MARKERS[t % len(MARKERS)],
            linestyle=LINESTYLES[t % len(LINESTYLES)],
            hatch=HATCHES[t % len(HATCHES)],
        )

    def technique_color(self, technique: str) -> str:
        return TECHNIQUE_COLORS[self.technique_index(technique) % len(TECHNIQUE_COLORS)]

    def ordered_archs(self, archs: Iterable[str]) -> list[str]:
        """Archs grouped by family (CNN, Transformer, MLP-Mixer), then by name."""

        def key(arch: str) -> tuple[int, str]:
            family = self.arch_families.get(arch, "unknown")
            rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
            return (rank, arch)

        return sorted(set(archs), key=key)


def _header(text: str) -> Patch:
    return Patch(facecolor="none", edgecolor="none", label=text)


def model_legend(
    fig: Figure,
    palette: Palette,
    archs: Iterable[str],
    techniques: Iterable[str],
    lines: bool = False,
) -> None:
    """One legend beside the figure: architectures by colour (with their family), then
    techniques by marker (and line style when ``lines``)."""
    archs = palette.ordered_archs(archs)
    techniques = [t for t in palette.techniques if t in set(techniques)]
    if not archs:
        return
    handles: list[Any] = [_header("architecture (family)")]
    for arch in archs:
        label = f"{arch} ({family_name(palette.arch_families.get(arch, 'unknown'))})"
        handles.append(Patch(facecolor=palette.colors.get(arch, "grey"), label=label))
    handles.append(_header("technique"))
    for technique in techniques:
        s = palette.style(archs[0], technique)
        handles.append(
            Line2D(
                [],
                [],
                color="#444444",
                marker=s.marker,
                linestyle=s.linestyle if lines else "none",
                label=technique,
            )
        )
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)


def technique_legend(fig: Figure, palette: Palette, techniques: Iterable[str]) -> None:
    """A legend of the bar colours of techniques."""
    wanted = set(techniques)
    handles = [
        Patch(facecolor=palette.technique_color(t), edgecolor="black", label=t)
        for t in palette.techniques
        if t in wanted
    ]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", title="technique", fontsize=9)


def size_axis(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """A model-size axis: log scale when sizes span more than a factor 20, k/M/G tick labels."""
    finite = [v for v in values if v and v > 0]
    formatter = FuncFormatter(lambda v, _pos: format_count(v))
    target = ax.xaxis if axis == "x" else ax.yaxis
    if finite and max(finite) / min(finite) > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        target.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    else:
        target.set_major_locator(MaxNLocator(nbins=4))
    target.set_major_formatter(formatter)


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Save a PNG atomically with stable bytes (fixed dpi, no Software tag)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
