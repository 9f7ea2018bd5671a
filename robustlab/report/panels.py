"""Shared pieces of the figures: panel grids and the per-run metrics they plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from robustlab.metrics.natural import CORRUPTION_SETS, IMAGENET_C
from robustlab.report.data import ReportData, Run
from robustlab.report.format import format_level


def panel_grid(
    count: int,
    ncols: int,
    panel_size: tuple[float, float],
    legend_width: float = 2.6,
    empty: frozenset[int] = frozenset(),
) -> tuple[Figure, list[Any]]:
    """A constrained-layout figure with ``count`` cells in rows of ``ncols``; the cells listed
    in ``empty`` get no axes (None in the returned list)."""
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    width, height = panel_size
    fig = Figure(figsize=(width * ncols + legend_width, height * nrows), layout="constrained")
    axes = [None if i in empty else fig.add_subplot(nrows, ncols, i + 1) for i in range(count)]
    return fig, axes


def rows_per_dataset(panels: Sequence[tuple], ncols: int) -> list[tuple | None]:
    """``panels`` (each starting with its dataset) padded with None so that every dataset
    starts a new row of ``ncols``."""
    out: list[tuple | None] = []
    for k, panel in enumerate(panels):
        if k and panel[0] != panels[k - 1][0]:
            out += [None] * (-len(out) % ncols)
        out.append(panel)
    return out


def grid_for(
    panels: Sequence[tuple], ncols: int, panel_size: tuple[float, float]
) -> tuple[Figure, list[tuple[Any, tuple]]]:
    """A panel grid whose rows start at each dataset; (axes, panel) pairs to draw."""
    ncols = max(1, min(ncols, max((sum(p[0] == q[0] for q in panels) for p in panels), default=1)))
    slots = rows_per_dataset(panels, ncols)
    empty = frozenset(i for i, p in enumerate(slots) if p is None)
    fig, axes = panel_grid(len(slots), ncols, panel_size, empty=empty)
    return fig, [(ax, p) for ax, p in zip(axes, slots, strict=True) if p is not None]


@dataclass(frozen=True)
class MetricSpec:
    """One number per run that a figure plots: where it is in the metrics table and its labels."""

    family: str
    noise: str
    level: float | None
    metric: str
    title: str
    ylabel: str
    short: str

    def get(self, data: ReportData, run: Run) -> float | None:
        value = data.value(run, self.family, self.noise, self.level, self.metric)
        return None if value is None or math.isnan(value) else value


CLEAN = MetricSpec("clean", "", None, "accuracy", "clean accuracy", "accuracy (%)", "clean")


def attack_spec(data: ReportData, attack: str, eps: float) -> MetricSpec:
    level = format_level(eps)
    return MetricSpec(
        "adversarial",
        attack,
        eps,
        "robust_accuracy",
        f"{attack} ({data.norm_label(attack)}) robust accuracy, eps {level}",
        "robust accuracy (%)",
        f"{attack}\n@{level}",
    )


def wcar_spec(eps: float) -> MetricSpec:
    level = format_level(eps)
    return MetricSpec(
        "adversarial",
        "all_attacks",
        eps,
        "wcar",
        f"WCAR (worst case over attacks), eps {level}",
        "WCAR (% of clean-correct)",
        f"WCAR\n@{level}",
    )


#: Display names of the corruption sets (robustlab.metrics.natural.CORRUPTION_SETS).
CORRUPTION_SET_LABELS = {
    "imagenet_c": "ImageNet-C",
    "extra_corruptions": "ImageNet-C extra",
    "geometric_corruptions": "geometric (MNIST-C)",
}


def corruption_set_label(name: str) -> str:
    """``ImageNet-C``, ``ImageNet-C extra``, ... for a corruption set name."""
    return CORRUPTION_SET_LABELS.get(name, name)


def evaluated_corruptions(data: ReportData, set_name: str, dataset: str | None = None) -> list[str]:
    """The corruptions of ``set_name`` with per-severity rows (in ``dataset``), in set order."""
    rows = data.rows(family="natural", metric="accuracy")
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    present = set(rows.loc[rows["level"].notna(), "noise"].astype(str))
    return [c for c in CORRUPTION_SETS.get(set_name, ()) if c in present]


def corruption_mean_spec(set_name: str) -> MetricSpec:
    """The mean accuracy over one corruption set's corruptions and severities."""
    label = corruption_set_label(set_name)
    return MetricSpec(
        "natural",
        set_name,
        None,
        "accuracy",
        f"mean accuracy over the {label} corruptions and severities",
        "accuracy (%)",
        f"{label.split(' (')[0]}\n(mean)",
    )


#: One mean-accuracy spec per corruption set, in CORRUPTION_SETS order.
CORRUPTION_MEANS = tuple(corruption_mean_spec(name) for name in CORRUPTION_SETS)
MCE = MetricSpec(
    "natural",
    IMAGENET_C,
    None,
    "mce",
    "mCE over the ImageNet-C corruptions, baseline-normalised (lower is better)",
    "mCE (%)",
    "mCE",
)
MCE_RAW = MetricSpec(
    "natural",
    IMAGENET_C,
    None,
    "mce_unnormalised",
    "mCE unnormalised: mean error over the ImageNet-C corruptions (lower is better)",
    "error (%)",
    "mCE raw",
)
MEAN_FLIP = MetricSpec(
    "natural",
    "all_perturbations",
    None,
    "mean_flip_probability",
    "mean flip probability (lower is better)",
    "flip probability (%)",
    "mFP",
)
SYSTEM_MEAN = MetricSpec(
    "system",
    "all_variants",
    None,
    "mean_accuracy",
    "mean accuracy over system-noise variants",
    "accuracy (%)",
    "system\n(mean)",
)
NSD = MetricSpec(
    "system",
    "all_variants",
    None,
    "nsd",
    "NSD over system variants (higher is better)",
    "NSD = -std of accuracy (points)",
    "NSD",
)


def present(specs: Sequence[MetricSpec], data: ReportData, runs: Sequence[Run]) -> list:
    """The specs with a value for at least one of ``runs``."""
    return [s for s in specs if any(s.get(data, r) is not None for r in runs)]


def attack_specs(data: ReportData, dataset: str) -> list[MetricSpec]:
    """Each attack at its largest eps on ``dataset``."""
    out = []
    for attack in data.attacks(dataset):
        eps = data.largest_eps(dataset, attack)
        if eps is not None:
            out.append(attack_spec(data, attack, eps))
    return out


def robustness_specs(data: ReportData, dataset: str) -> list[MetricSpec]:
    """RobustART's per-model metrics of one dataset: clean, each attack at its largest eps,
    WCAR at the largest eps, mCE, mean flip probability, NSD (those with data)."""
    runs = data.runs_of(dataset)
    specs = [CLEAN, *attack_specs(data, dataset)]
    wcar = data.rows(dataset=dataset, family="adversarial", metric="wcar")
    if len(wcar):
        specs.append(wcar_spec(float(wcar["level"].max())))
    specs += [MCE if present([MCE], data, runs) else MCE_RAW, MEAN_FLIP, NSD]
    return present(specs, data, runs)


def run_size(data: ReportData, run: Run, metric: str) -> float | None:
    """params / macs / trainable_params of a run (complexity rows)."""
    value = data.value(run, "complexity", "", None, metric)
    return None if value is None or math.isnan(value) else value


def sorted_runs(data: ReportData, runs: Sequence[Run], palette: Any) -> list[Run]:
    """Runs by family, arch, then technique order."""
    archs = palette.ordered_archs(r[1] for r in runs)
    return sorted(runs, key=lambda r: (r[0], archs.index(r[1]), palette.technique_index(r[2])))
