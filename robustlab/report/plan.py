"""Which figures a grid gets: a pure function of the grid, importable without torch.

The Snakefile calls :func:`figure_names` on the configuration (to declare the figures job's
outputs) and the figures stage calls it on the model cards and tables (to know what the data
support); both describe the grid the same way, so the two lists agree.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

# Options of an architecture entry that make it a point of an architecture sweep (RobustART's
# NAS study): depth and width per stage, kernel sizes, input resolution.
SWEEP_AXES = ("depths", "widths", "widen_factors", "kernel_size", "input_resolution")
CLAT_SUFFIX = "+clat"
_WRN_A = re.compile(r"wrn_a\d+$")

# Every figure, in the order the report shows them.
ALL_FIGURES = (
    "accuracy_by_noise_family",
    "robust_accuracy_vs_eps",
    "transfer_asr",
    "metrics_vs_params",
    "metrics_vs_macs",
    "technique_comparison",
    "architecture_sweep",
    "robust_scaling",
    "clat_training_curves",
    "corruption_accuracy_vs_severity",
    "corruption_heatmap",
    "flip_probability",
    "system_noise_accuracy",
)


def arch_base(name: str, options: Mapping[str, Any]) -> str:
    """The registered architecture an entry builds (its ``arch`` option, else its name)."""
    return str(options.get("arch", name))


def sweep_archs(archs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Architectures that are sweep points: at least two entries of one base that set a sweep
    axis (depths, widths, kernel size, input resolution)."""
    by_base: dict[str, list[str]] = {}
    for name, options in archs.items():
        if any(axis in options for axis in SWEEP_AXES):
            by_base.setdefault(arch_base(name, options), []).append(name)
    return sorted(n for names in by_base.values() if len(names) >= 2 for n in names)


def _equal(values: Any) -> bool:
    return isinstance(values, list | tuple) and len(set(values)) == 1


def scaling_series(base: str, options: Mapping[str, Any]) -> str | None:
    """The series of the RobustScaling figure an architecture belongs to, or None.

    ``uniform scaling``: a ``robust_resnet*`` or ``wrn*`` entry whose options set per-stage
    ``depths`` that are all equal (and widths, when set, all equal), or a ``wrn`` with
    ``depth``/``widen_factor``; ``RobustScaling``: any other RobustResNet (``robust_resnet*``)
    or WRN-A (``wrn_a1..a4``, RobustScaling on the WRN block); ``WRN baseline``: the other WRN
    entries (``wrn_28_10``, ``wrn_34_r``, ...). Other architectures: None.
    """
    is_robust = base.startswith("robust_resnet") or bool(_WRN_A.match(base))
    if not (is_robust or base.startswith("wrn")):
        return None
    widths = options.get("widths", options.get("widen_factors"))
    uniform = (_equal(options.get("depths")) and (widths is None or _equal(widths))) or (
        base == "wrn" and ("depth" in options or "widen_factor" in options)
    )
    if uniform:
        return "uniform scaling"
    return "RobustScaling" if is_robust else "WRN baseline"


def has_robust_scaling(archs: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when the grid has a RobustResNet and another series to compare it with."""
    series = {
        name: scaling_series(arch_base(name, options), options) for name, options in archs.items()
    }
    robust = any(arch_base(n, archs[n]).startswith("robust_resnet") for n, s in series.items() if s)
    return robust and len({s for s in series.values() if s}) >= 2


def figure_names(
    archs: Mapping[str, Mapping[str, Any]],
    techniques: Collection[str],
    *,
    transfer: bool,
    corruptions: bool,
    perturbations: bool,
    system: bool = True,
) -> list[str]:
    """The figures of a grid, in report order.

    ``archs`` maps each grid architecture to its options (``arch`` names the registered one for
    a named variant); the flags say whether transfer attacks, corruptions, perturbation
    sequences and system-noise variants are evaluated.
    """
    wanted = {"accuracy_by_noise_family", "robust_accuracy_vs_eps"}
    wanted |= {"metrics_vs_params", "metrics_vs_macs"}
    if transfer:
        wanted.add("transfer_asr")
    if len(set(techniques)) >= 2:
        wanted.add("technique_comparison")
    if sweep_archs(archs):
        wanted.add("architecture_sweep")
    if has_robust_scaling(archs):
        wanted.add("robust_scaling")
    if any(t.endswith(CLAT_SUFFIX) for t in techniques):
        wanted.add("clat_training_curves")
    if corruptions:
        wanted |= {"corruption_accuracy_vs_severity", "corruption_heatmap"}
    if perturbations:
        wanted.add("flip_probability")
    if system:
        wanted.add("system_noise_accuracy")
    return [name for name in ALL_FIGURES if name in wanted]
