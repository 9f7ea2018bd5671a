"""The CLAT study view: runs grouped by arm (a technique variant without its seed), per arm the
mean clean and robust accuracy over seeds and the trainable share, and per CLAT arm its paired
difference to the run it starts from, seed by seed, pooled over seeds.

Pooled estimate: the mean of the per-seed paired differences (each from
``results/comparisons.parquet``, Newcombe's interval over the shared test images) with a
Student-t 95 % interval over the seeds, mean +- t(0.975, s - 1) * sd / sqrt(s). It treats the
seed as the unit of replication (training randomness) and the image-level uncertainty is left
in the per-seed intervals; one seed gives no pooled interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import pandas as pd

from robustlab.report.comparisons import metric_label
from robustlab.report.data import ReportData, Run
from robustlab.report.tables import Cell, Column, number_cell, render_table, text_cell

#: (metric, noise) of the comparison rows the study shows: clean and robust accuracy
STUDY_METRICS = ("accuracy", "robust_accuracy")


@dataclass(frozen=True)
class Pooled:
    """The mean of per-seed differences (points) and its t-interval over seeds."""

    mean: float
    low: float | None
    high: float | None
    seeds: int


def pooled_difference(differences: Sequence[float]) -> Pooled:
    """Mean of per-seed paired differences with a Student-t 95 % interval over the seeds (none
    for one seed). Raises ValueError for no differences."""
    values = [float(d) for d in differences]
    if not values:
        raise ValueError("pooled_difference: no per-seed differences")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return Pooled(mean, None, None, 1)
    from scipy import stats  # here, not at the top: scipy.stats is slow to import

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return Pooled(mean, mean - half, mean + half, len(values))


def _points(value: float) -> str:
    return f"{value + 0.0:+.1f}"


def pooled_text(label: str, pooled: Pooled) -> str:
    """``clat vs pgd_at: -3.1 points [-5.0, -1.2] over 3 seeds``."""
    interval = "" if pooled.low is None else f" [{_points(pooled.low)}, {_points(pooled.high)}]"
    seeds = "1 seed" if pooled.seeds == 1 else f"{pooled.seeds} seeds"
    return f"{label}: {_points(pooled.mean)} points{interval} over {seeds}"


def arms(data: ReportData, runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by arm, each arm's runs sorted by seed."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(data.variant(run).arm, []).append(run)
    return {
        arm: sorted(members, key=lambda r: (data.variant(r).seed or 0, r))
        for arm, members in sorted(out.items())
    }


def is_study(data: ReportData, runs: Sequence[Run]) -> bool:
    """True when some arm holds runs of two or more seeds."""
    return any(
        len({data.variant(r).seed for r in members}) > 1 for members in arms(data, runs).values()
    )


def _comparison(
    frame: pd.DataFrame, run_a: Run, run_b: Run, metric: str, noise: str, level: float
) -> float | None:
    """B minus A in points for one metric, either orientation of the stored pair."""
    for a, b, sign in ((run_a, run_b, 1.0), (run_b, run_a, -1.0)):
        rows = frame[
            (frame["dataset"] == a[0])
            & (frame["arch"] == a[1])
            & (frame["run_a"] == a[2])
            & (frame["run_b"] == b[2])
            & (frame["metric"] == metric)
            & (frame["noise"] == noise)
            & ((frame["level"] == level) | (frame["level"].isna() & pd.isna(level)))
        ]
        if not rows.empty:
            return sign * float(rows["difference"].iloc[0])
    return None


def paired_rows(data: ReportData, runs: Sequence[Run]) -> list[dict]:
    """Per CLAT arm and metric: the per-seed differences to the pretrained run and the pooled
    estimate (``arm``, ``base_arm``, ``metric``, ``noise``, ``level``, ``seeds``,
    ``differences``, ``pooled``)."""
    frame = data.comparisons
    if frame is None or frame.empty:
        return []
    keys = (
        frame[frame["metric"].isin(STUDY_METRICS)][["metric", "noise", "level"]]
        .drop_duplicates()
        .sort_values(["metric", "noise", "level"], kind="mergesort")
    )
    out = []
    for arm, members in arms(data, runs).items():
        clat = [r for r in members if data.variant(r).is_clat]
        if not clat:
            continue
        bases = {r: (r[0], r[1], str(data.variant(r).pretrained)) for r in clat}
        base_arms = sorted({data.variant(b).arm for b in bases.values()})
        for metric, noise, level in keys.itertuples(index=False, name=None):
            seeds, diffs = [], []
            for run in clat:
                diff = _comparison(frame, bases[run], run, metric, str(noise), level)
                if diff is not None:
                    seeds.append(data.variant(run).seed)
                    diffs.append(diff)
            if diffs:
                out.append(
                    {
                        "arm": arm,
                        "base_arm": ", ".join(base_arms),
                        "metric": metric,
                        "noise": str(noise),
                        "level": level,
                        "seeds": seeds,
                        "differences": diffs,
                        "pooled": pooled_difference(diffs),
                    }
                )
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def trainable_share(data: ReportData, run: Run) -> float | None:
    """Percent of the parameters trained (card trainable_params / params)."""
    card = data.cards.get(run, {})
    total, trainable = card.get("params"), card.get("trainable_params")
    return None if not total or trainable is None else 100.0 * trainable / total


def arm_table(data: ReportData, runs: Sequence[Run]) -> str:
    """Per arm: seeds, mean clean accuracy and mean robust accuracy per attack and level over
    the seeds, and the mean trainable share."""
    dataset = runs[0][0]
    robust = [
        (attack, level)
        for attack in data.attacks(dataset)
        for level in data.eps_levels(dataset, attack)
    ]
    columns = [
        Column("arm", "technique variant without its seed", is_text=True),
        Column("technique", "registered technique", is_text=True),
        Column("seeds", is_text=True),
        Column("clean accuracy (mean %)"),
        *(Column(f"{a} at eps {level:g} (mean %)") for a, level in robust),
        Column("trainable share (mean %)", "card trainable_params / params"),
    ]
    rows = []
    for arm, members in arms(data, runs).items():
        clean = _mean([data.value(r, "clean", "", None, "accuracy") for r in members])
        means = [
            _mean([data.value(r, "adversarial", a, level, "robust_accuracy") for r in members])
            for a, level in robust
        ]
        share = _mean([trainable_share(data, r) for r in members])
        rows.append(
            [
                text_cell(arm),
                text_cell(data.variant(members[0]).technique),
                text_cell(", ".join(str(data.variant(r).seed) for r in members)),
                number_cell(clean, "percent"),
                *(number_cell(m, "percent") for m in means),
                Cell(
                    "–" if share is None else f"{share:.1f}%", "" if share is None else repr(share)
                ),
            ]
        )
    return render_table(columns, rows, table_id=f"clat-study-arms-{runs[0][1]}")


def study_html(data: ReportData) -> str:
    """The study view per dataset and architecture with several seeds of one arm; "" else."""
    parts = []
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in data.runs:
        groups.setdefault((run[0], run[1]), []).append(run)
    for (dataset, arch), runs in sorted(groups.items()):
        if not is_study(data, runs):
            continue
        parts.append(f"<h3>{escape(f'Study by arm: {dataset}/{arch}')}</h3>")
        parts.append(arm_table(data, runs))
        items = []
        for row in paired_rows(data, runs):
            label = (
                f"{row['arm']} vs {row['base_arm']}, "
                f"{metric_label(row['metric'], row['noise'], row['level'])}"
            )
            per_seed = ", ".join(
                f"seed {s}: {_points(d)}"
                for s, d in zip(row["seeds"], row["differences"], strict=True)
            )
            text = f"{pooled_text(label, row['pooled'])} ({per_seed})"
            items.append(f"<li>{escape(text)}</li>")
        if items:
            parts.append(
                "<p>Each CLAT arm against the PGD-AT run of the same seed it starts from "
                "(paired on the same test images, results/comparisons.parquet); pooled: the "
                "mean of the per-seed differences with a Student-t 95 % interval over seeds.</p>"
                '<ul class="clat-study">' + "".join(items) + "</ul>"
            )
    return "\n".join(parts)
