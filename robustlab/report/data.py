"""The inputs of the figures and the report, gathered in one object, with lookups.

Everything comes from the pipeline's tables (``results/metrics.parquet``, transfer, sanity,
comparisons), the model cards, training histories and CLAT criticality tables; nothing is
recomputed here beyond selecting, averaging for a figure, and ordering.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from robustlab.report.plan import figure_names
from robustlab.variants import Variant, variant_from_card

Run = tuple[str, str, str]  # (dataset, arch, technique)
Key = tuple[str, str, str, str, str, float | None, str]


@dataclass(frozen=True)
class Entry:
    """One row of the metrics table: value, distinct images n, 95 % interval (NaN: none)."""

    value: float
    n: int
    ci_low: float
    ci_high: float

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(low, high)`` in percent, or None where no interval applies."""
        if math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return None
        return (self.ci_low, self.ci_high)


@dataclass(frozen=True)
class DatasetInfo:
    """What the prepared test table of one dataset says about itself (schema metadata)."""

    rows: int
    source_checksum: str
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    classes: int | None = None


@dataclass
class ReportData:
    """Tables and cards the report is drawn from.

    ``cards`` and ``histories`` are keyed by run; ``cards[run]["arch_base"]`` is the registered
    architecture and ``cards[run]["arch"]`` the run's (variant) name. ``histories`` may hold the
    base runs CLAT started from even when they are not in the grid. ``attack_norms`` maps an
    attack to ``linf``/``l2``/``l1`` where known.
    """

    metrics: pd.DataFrame
    cards: dict[Run, dict[str, Any]] = field(default_factory=dict)
    histories: dict[Run, pd.DataFrame] = field(default_factory=dict)
    criticality: dict[Run, pd.DataFrame] = field(default_factory=dict)
    transfer: pd.DataFrame | None = None
    sanity: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    attack_norms: dict[str, str] = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------

    @cached_property
    def index(self) -> dict[Key, Entry]:
        """``(dataset, arch, technique, family, noise, level or None, metric) -> Entry``."""
        out: dict[Key, Entry] = {}
        m = self.metrics
        for row in zip(
            m["dataset"],
            m["arch"],
            m["technique"],
            m["family"],
            m["noise"],
            m["level"],
            m["metric"],
            m["value"],
            m["n"],
            m["ci_low"],
            m["ci_high"],
            strict=True,
        ):
            level = None if math.isnan(row[5]) else float(row[5])
            out[(*row[:5], level, row[6])] = Entry(
                float(row[7]), int(row[8]), float(row[9]), float(row[10])
            )
        return out

    def entry(
        self, run: Run, family: str, noise: str, level: float | None, metric: str
    ) -> Entry | None:
        """One row of the metrics table (value, n, interval), or None when it is absent."""
        return self.index.get((*run, family, noise, level, metric))

    def value(
        self, run: Run, family: str, noise: str, level: float | None, metric: str
    ) -> float | None:
        """One number of the metrics table, or None when it is absent."""
        hit = self.entry(run, family, noise, level, metric)
        return None if hit is None else hit.value

    @cached_property
    def runs(self) -> list[Run]:
        """Every (dataset, arch, technique) of the metrics table, sorted."""
        cols = self.metrics[["dataset", "arch", "technique"]]
        return sorted({tuple(map(str, r)) for r in cols.itertuples(index=False, name=None)})

    @cached_property
    def datasets_present(self) -> list[str]:
        return sorted({r[0] for r in self.runs})

    def runs_of(self, dataset: str) -> list[Run]:
        return [r for r in self.runs if r[0] == dataset]

    @cached_property
    def techniques(self) -> list[str]:
        """Techniques present, ``standard`` first, each ``X+clat`` right after ``X``."""
        variants = {r[2]: self.variant(r) for r in self.runs}

        def key(t: str) -> tuple[bool, str, bool, str]:
            variant = variants[t]
            base = variant.pretrained if variant.is_clat else t
            return (base != "standard", str(base), variant.is_clat, t)

        return sorted(variants, key=key)

    def variant(self, run: Run) -> Variant:
        """The run's registered technique, the run CLAT started from and its seed (its card;
        a run without one: from the technique key, robustlab.variants)."""
        return variant_from_card(run[2], self.cards.get(run, {}))

    @cached_property
    def archs(self) -> list[str]:
        return sorted({r[1] for r in self.runs})

    @cached_property
    def arch_families(self) -> dict[str, str]:
        """``{arch: cnn | transformer | mlp}`` from the cards; ``unknown`` without a card."""
        families = {a: "unknown" for a in self.archs}
        for card in self.cards.values():
            families[str(card["arch"])] = str(card.get("family", "unknown"))
        return families

    def arch_card(self, arch: str) -> dict[str, Any]:
        """A card of ``arch`` (the first run's); empty when there is none."""
        for run in sorted(self.cards):
            if run[1] == arch:
                return self.cards[run]
        return {}

    @cached_property
    def arch_options(self) -> dict[str, dict[str, Any]]:
        """``{arch: {"arch": registered name, **arch_config}}``, as the grid declares them."""
        out = {}
        for arch in self.archs:
            card = self.arch_card(arch)
            out[arch] = {"arch": str(card.get("arch_base", arch)), **card.get("arch_config", {})}
        return out

    def rows(self, **equal: Any) -> pd.DataFrame:
        """Rows of the metrics table whose columns equal the given values."""
        mask = pd.Series(True, index=self.metrics.index)
        for col, value in equal.items():
            mask &= self.metrics[col] == value
        return self.metrics[mask]

    def attacks(self, dataset: str) -> list[str]:
        """Attacks with robust-accuracy rows on a dataset, sorted."""
        rows = self.rows(dataset=dataset, family="adversarial", metric="robust_accuracy")
        return sorted(set(rows["noise"].astype(str)))

    def eps_levels(self, dataset: str, attack: str) -> list[float]:
        rows = self.rows(dataset=dataset, family="adversarial", noise=attack)
        rows = rows[rows["metric"] == "robust_accuracy"]
        return sorted(set(rows["level"].astype(float)))

    def largest_eps(self, dataset: str, attack: str) -> float | None:
        levels = self.eps_levels(dataset, attack)
        return levels[-1] if levels else None

    @cached_property
    def wcar_coverage(self) -> pd.DataFrame:
        """Per WCAR row: the attacks it covers, those of its norm it lacks, and n
        (robustlab.metrics.adversarial.wcar_coverage)."""
        from robustlab.metrics.adversarial import wcar_coverage

        return wcar_coverage(self.metrics, self.attack_norms)

    def norm_label(self, attack: str) -> str:
        """``L-inf``, ``L2``, ``L1``, or ``norm unknown``."""
        norm = self.attack_norms.get(attack, "")
        return {"linf": "L-inf", "l2": "L2", "l1": "L1"}.get(norm.lower(), "norm unknown")

    def clat_runs(self) -> list[Run]:
        """Runs of CLAT (``X+clat`` and named CLAT variants), from their cards."""
        return [r for r in self.runs if self.variant(r).is_clat]

    def pretrained_run(self, run: Run) -> Run | None:
        """The run a CLAT run started from (None: not CLAT)."""
        base = self.variant(run).pretrained
        return None if base is None else (run[0], run[1], base)

    def has_transfer(self) -> bool:
        return self.transfer is not None and not self.transfer.empty

    def has_corruptions(self) -> bool:
        rows = self.rows(family="natural", metric="accuracy")
        return bool(rows["level"].notna().any())

    def has_perturbations(self) -> bool:
        return bool((self.metrics["metric"] == "flip_probability").any())

    def has_system(self) -> bool:
        return bool(self.rows(family="system", metric="accuracy").shape[0])

    def figure_names(self) -> list[str]:
        """The figures these tables support (the same rule the Snakefile applies to params)."""
        return figure_names(
            self.arch_options,
            sorted({self.variant(r).technique for r in self.runs}),
            transfer=self.has_transfer(),
            corruptions=self.has_corruptions(),
            perturbations=self.has_perturbations(),
            system=self.has_system(),
        )


def dataset_info(metadata: Mapping[bytes | str, bytes | str], rows: int) -> DatasetInfo:
    """A :class:`DatasetInfo` from a prepared image table's schema metadata and row count."""
    meta = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in metadata.items()
    }

    def number(key: str) -> int | None:
        return int(meta[key]) if key in meta else None

    classes = None
    if "class_names" in meta:
        import json

        classes = len(json.loads(meta["class_names"]))
    return DatasetInfo(
        rows=rows,
        source_checksum=meta.get("source_checksum", "unknown"),
        height=number("height"),
        width=number("width"),
        channels=number("channels"),
        classes=classes,
    )
