"""The report's figures by name: a registry of builders ``(data, palette) -> Figure``.

:func:`write_figures` draws the requested names into a folder as ``{name}.png``; which names a
grid gets is :func:`robustlab.report.plan.figure_names` (the data's own list is
:meth:`ReportData.figure_names`). A requested figure the data cannot support is an error, so a
figure is never an empty panel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib import style as mpl_style
from matplotlib.figure import Figure

from robustlab.registry import Registry
from robustlab.report import figures_adversarial as adv
from robustlab.report import figures_noise as noise
from robustlab.report import figures_size as size
from robustlab.report import figures_training as training
from robustlab.report.data import ReportData
from robustlab.report.plan import ALL_FIGURES
from robustlab.report.style import Palette, save_figure

FigureBuilder = Callable[[ReportData, Palette], Figure]
FIGURES: Registry[FigureBuilder] = Registry("figure")

for _name, _build in (
    ("accuracy_by_noise_family", noise.accuracy_by_noise_family),
    ("robust_accuracy_vs_eps", adv.robust_accuracy_vs_eps),
    ("transfer_asr", adv.transfer_asr),
    ("metrics_vs_params", size.metrics_vs_params),
    ("metrics_vs_macs", size.metrics_vs_macs),
    ("technique_comparison", training.technique_comparison),
    ("architecture_sweep", size.architecture_sweep),
    ("robust_scaling", size.robust_scaling),
    ("clat_training_curves", training.clat_training_curves),
    ("corruption_accuracy_vs_severity", noise.corruption_accuracy_vs_severity),
    ("corruption_heatmap", noise.corruption_heatmap),
    ("flip_probability", noise.flip_probability),
    ("system_noise_accuracy", noise.system_noise_accuracy),
):
    FIGURES.register(_name)(_build)
assert FIGURES.names() == sorted(ALL_FIGURES)


def palette_of(data: ReportData) -> Palette:
    """The styles every figure of ``data`` shares."""
    return Palette(data.arch_families, data.techniques)


def draw_figure(data: ReportData, name: str, palette: Palette | None = None) -> Figure:
    """One figure by name (drawn under the current matplotlib style); an error when the data
    lack what it shows."""
    build = FIGURES.get(name)
    supported = data.figure_names()
    if name not in supported:
        raise ValueError(
            f"figure {name!r} has no data in these tables (they support: "
            f"{', '.join(supported)}); the figure list and the grid disagree — rerun the "
            "pipeline so the tables match params.yaml"
        )
    return build(data, palette or palette_of(data))


def write_figures(
    data: ReportData, out_dir: str | os.PathLike[str], names: Sequence[str] | None = None
) -> list[Path]:
    """Draw ``names`` (default: every figure the data support) as ``out_dir/{name}.png``."""
    names = list(data.figure_names() if names is None else names)
    palette = palette_of(data)
    paths = []
    with mpl_style.context("default"):
        for name in names:
            path = Path(out_dir) / f"{name}.png"
            save_figure(draw_figure(data, name, palette), path)
            paths.append(path)
    return paths
