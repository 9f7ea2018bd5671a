"""The tidy metrics table (``results/metrics.parquet``) and its DVC summary (``metrics.json``).

One row per measured number with exactly the contract columns of DESIGN.md:
``dataset, arch, technique, family, noise, level, metric, value, n, ci_low, ci_high``.
``n`` counts the distinct images behind the value; ``ci_low``/``ci_high`` bound its 95 %
interval in percent (Wilson for a proportion of n images, a seeded bootstrap over images for a
mean over cells), NaN where no interval applies (docs/metrics.md).

Noise conventions: ``noise`` is "" for clean/complexity/training rows, the attack or corruption
name for per-noise rows, ``all_attacks`` for ``wcar``, the corruption set (``imagenet_c``,
``extra_corruptions``, ``geometric_corruptions``; robustlab.metrics.natural.CORRUPTION_SETS) for
its mean ``accuracy``, ``mce``, ``relative_mce`` and ``mce_unnormalised``, ``all_perturbations``
for mFP / mFR and ``all_variants`` for the system-noise means. ``level`` is eps (pixel scale) for
adversarial rows, the severity for per-severity natural rows, NaN otherwise. ``n`` counts the
distinct images behind a natural, stability or system value (module docstrings say which).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from robustlab.io import write_table
from robustlab.metrics.accuracy import clean_accuracy
from robustlab.metrics.adversarial import attack_metrics, cost_metrics, worst_case_metrics
from robustlab.metrics.intervals import (
    bootstrap_mean_interval,
    per_image_share,
    successes_of,
    wilson_interval,
)
from robustlab.metrics.natural import CORRUPTION_SETS, corruption_metrics, normalised_metrics
from robustlab.metrics.stability import flip_probability_metrics, flip_rate_metrics
from robustlab.metrics.system import system_metrics

METRICS_COLUMNS = [
    "dataset",
    "arch",
    "technique",
    "family",
    "noise",
    "level",
    "metric",
    "value",
    "n",
    "ci_low",
    "ci_high",
]
ROW_COLUMNS = METRICS_COLUMNS[:9]  # the rows' columns before the intervals are added
INTERVAL_COLUMNS = ["ci_low", "ci_high"]
STRING_COLUMNS = ["dataset", "arch", "technique", "family", "noise", "metric"]
FLOAT_COLUMNS = ["level", "value", "ci_low", "ci_high"]
FAMILIES = ("clean", "adversarial", "natural", "system", "complexity", "training")
SORT_COLUMNS = ["dataset", "arch", "technique", "family", "noise", "level", "metric"]
METRICS_SCHEMA = pa.schema(
    [(c, pa.string()) for c in METRICS_COLUMNS[:5]]
    + [("level", pa.float64()), ("metric", pa.string()), ("value", pa.float64()), ("n", pa.int64())]
    + [("ci_low", pa.float64()), ("ci_high", pa.float64())]
)
COMPLEXITY_KEYS = ("params", "macs", "trainable_params")


@dataclass(frozen=True)
class RunOutcomes:
    """The per-example outcome tables of one run (formats of docs/artifacts.md)."""

    clean: pd.DataFrame
    adversarial: pd.DataFrame
    natural: pd.DataFrame
    stability: pd.DataFrame | None = None
    system: pd.DataFrame | None = None


def _part(
    family: str, rows: pd.DataFrame | list[tuple[str, float, str, float, int]]
) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["noise", "level", "metric", "value", "n"])
    return frame.assign(family=family)


def complexity_rows(card: Mapping[str, Any]) -> pd.DataFrame:
    """``params``, ``macs``, ``trainable_params`` from a model card (n = 0)."""
    missing = [k for k in COMPLEXITY_KEYS if k not in card]
    if missing:
        raise ValueError(f"model card lacks key(s) {', '.join(missing)}; rerun stages.train")
    rows = [("", math.nan, k, float(card[k]), 0) for k in COMPLEXITY_KEYS if card[k] is not None]
    return _part("complexity", rows)


def training_rows(history: pd.DataFrame) -> pd.DataFrame:
    """``epochs`` and the last epoch's ``final_val_accuracy`` and ``final_val_pgd_accuracy``
    from ``history.parquet`` (n = 0; NaN values are left out).

    Wall-clock seconds stay in ``history.parquet`` only: a timing would make the metrics table
    differ between two runs of the same inputs.
    """
    history = history.sort_values("epoch", kind="mergesort")
    rows = [("", math.nan, "epochs", float(len(history)), 0)]
    if len(history):
        last = history.iloc[-1]
        candidates = {
            "final_val_accuracy": float(last["val_accuracy"]),
            "final_val_pgd_accuracy": float(last["val_pgd_accuracy"]),
        }
        rows += [("", math.nan, k, v, 0) for k, v in candidates.items() if not math.isnan(v)]
    return _part("training", rows)


def run_metrics(
    dataset: str,
    arch: str,
    technique: str,
    outcomes: RunOutcomes,
    card: Mapping[str, Any] | None = None,
    history: pd.DataFrame | None = None,
    baseline: RunOutcomes | None = None,
) -> pd.DataFrame:
    """All metric rows of one run; normalised mCE and flip-rate rows only when a ``baseline``
    run is given (compared with it image by image, joined on the image index)."""
    acc, n = clean_accuracy(outcomes.clean)
    parts = [
        _part("clean", [("", math.nan, "accuracy", acc, n)]),
        _part("adversarial", attack_metrics(outcomes.adversarial)),
        _part("adversarial", worst_case_metrics(outcomes.adversarial)),
        _part("adversarial", cost_metrics(outcomes.adversarial)),
        _part("natural", corruption_metrics(outcomes.natural)),
    ]
    if outcomes.stability is not None:
        parts.append(_part("natural", flip_probability_metrics(outcomes.stability)))
    if outcomes.system is not None:
        parts.append(_part("system", system_metrics(outcomes.system)))
    if baseline is not None:
        normalised = normalised_metrics(
            outcomes.natural, outcomes.clean, baseline.natural, baseline.clean
        )
        parts.append(_part("natural", normalised))
        if outcomes.stability is not None and baseline.stability is not None:
            parts.append(
                _part("natural", flip_rate_metrics(outcomes.stability, baseline.stability))
            )
    if card is not None:
        parts.append(complexity_rows(card))
    if history is not None:
        parts.append(training_rows(history))
    parts = [p for p in parts if len(p)]
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.assign(dataset=dataset, arch=arch, technique=technique)[ROW_COLUMNS]
    return add_intervals(frame, outcomes)


# Metrics that are a share of n distinct images: a Wilson interval from value and n.
PROPORTION_METRICS = ("accuracy", "robust_accuracy", "ar", "asr", "wcar")
# Mean corruption accuracy rows (family natural, metric accuracy, level NaN) average over the
# corruptions of their set (robustlab.metrics.natural.CORRUPTION_SETS); a single corruption name
# averages over its severities.


def corruption_set(noise: str, natural: pd.DataFrame) -> list[str]:
    """The corruption names a mean corruption accuracy row of noise ``noise`` averages over."""
    present = sorted(set(natural["corruption"].astype(str)))
    if noise in CORRUPTION_SETS:
        return [c for c in CORRUPTION_SETS[noise] if c in present]
    if noise in present:
        return [noise]
    raise ValueError(
        f"natural accuracy row with noise {noise!r} and no severity: not a corruption of the "
        f"outcomes nor a known set ({', '.join(CORRUPTION_SETS)}); add it "
        "to robustlab.metrics.natural.CORRUPTION_SETS"
    )


def _interval(row: pd.Series, outcomes: RunOutcomes) -> tuple[float, float]:
    family, metric, noise = str(row["family"]), str(row["metric"]), str(row["noise"])
    level_is_nan = math.isnan(float(row["level"]))
    if family == "natural" and metric == "accuracy" and level_is_nan:
        names = corruption_set(noise, outcomes.natural)
        return bootstrap_mean_interval(per_image_share(outcomes.natural, "corruption", names))
    if family == "system" and metric == "mean_accuracy" and outcomes.system is not None:
        variants = sorted(set(outcomes.system["variant"].astype(str)))
        return bootstrap_mean_interval(per_image_share(outcomes.system, "variant", variants))
    if metric in PROPORTION_METRICS and family != "training":
        n = int(row["n"])
        value = float(row["value"])
        if n == 0 or math.isnan(value):
            return math.nan, math.nan
        return wilson_interval(successes_of(value, n), n)
    return math.nan, math.nan


def add_intervals(frame: pd.DataFrame, outcomes: RunOutcomes) -> pd.DataFrame:
    """``frame`` (one run's rows) with ``ci_low``/``ci_high``: the 95 % interval in percent of
    every accuracy-type row, NaN for the others (docs/metrics.md, "Intervals").

    Wilson for a share of n distinct images (``accuracy`` of one cell, ``robust_accuracy``,
    ``ar``, ``asr``, ``wcar``); a seeded bootstrap over images for a mean over cells (mean
    corruption accuracy of a set, system ``mean_accuracy``), from the per-example outcomes.
    """
    bounds = [_interval(row, outcomes) for _, row in frame.iterrows()]
    low = [b[0] for b in bounds]
    high = [b[1] for b in bounds]
    out = frame[ROW_COLUMNS].copy()
    out["ci_low"] = pd.Series(low, index=frame.index, dtype="float64")
    out["ci_high"] = pd.Series(high, index=frame.index, dtype="float64")
    return out


def finalize_metrics(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate metric rows, enforce the contract dtypes, sort deterministically, validate."""
    frames = [f for f in frames if len(f)]
    if frames:
        frame = pd.concat(frames, ignore_index=True)[METRICS_COLUMNS]
    else:
        frame = pd.DataFrame({c: [] for c in METRICS_COLUMNS})
    for col in STRING_COLUMNS:
        if frame[col].isna().any():
            raise ValueError(f"metrics column {col!r} has missing values")
        frame[col] = frame[col].astype("str")
    frame = frame.astype({c: "float64" for c in FLOAT_COLUMNS} | {"n": "int64"})
    frame = frame.sort_values(SORT_COLUMNS, na_position="last", kind="mergesort")
    frame = frame.reset_index(drop=True)
    validate_metrics_frame(frame)
    return frame


def validate_metrics_frame(frame: pd.DataFrame) -> None:
    """Raise ValueError naming the offending column if ``frame`` breaks the metrics contract."""
    columns = list(frame.columns)
    for col in METRICS_COLUMNS:
        if col not in columns:
            raise ValueError(f"metrics table lacks column {col!r}")
    for col in columns:
        if col not in METRICS_COLUMNS:
            raise ValueError(f"metrics table has unexpected column {col!r}")
    if columns != METRICS_COLUMNS:
        wrong = next(c for c, want in zip(columns, METRICS_COLUMNS, strict=True) if c != want)
        raise ValueError(
            f"metrics column {wrong!r} is out of order; expected {', '.join(METRICS_COLUMNS)}"
        )
    for col in STRING_COLUMNS:
        series = frame[col]
        if not pd.api.types.is_string_dtype(series.dtype) or pd.api.types.is_object_dtype(
            series.dtype
        ):
            raise ValueError(f"metrics column {col!r} must be of string dtype, not {series.dtype}")
        if series.isna().any():
            raise ValueError(f"metrics column {col!r} has missing values")
    for col in FLOAT_COLUMNS:
        if frame[col].dtype != "float64":
            raise ValueError(f"metrics column {col!r} must be float64, not {frame[col].dtype}")
    if frame["n"].dtype != "int64":
        raise ValueError(f"metrics column 'n' must be int64, not {frame['n'].dtype}")
    if (frame["n"] < 0).any():
        raise ValueError("metrics column 'n' has negative counts")
    low, high = frame["ci_low"], frame["ci_high"]
    if (low.isna() != high.isna()).any():
        raise ValueError("metrics columns 'ci_low' and 'ci_high' must be NaN together")
    if (low > high).any():
        raise ValueError("metrics column 'ci_low' exceeds 'ci_high' in some row")
    if ((frame["n"] == 0) & low.notna()).any():
        raise ValueError("metrics column 'ci_low': an interval on a row with n = 0")
    unknown = sorted(set(frame["family"]) - set(FAMILIES))
    if unknown:
        raise ValueError(
            f"metrics column 'family' has unknown value(s) {unknown}; known: {', '.join(FAMILIES)}"
        )


def metrics_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The validated frame as an Arrow table with the contract schema (string, double, int64)."""
    validate_metrics_frame(frame)
    return pa.Table.from_pandas(frame, schema=METRICS_SCHEMA, preserve_index=False)


def write_metrics(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the metrics table atomically; identical frames give byte-identical files."""
    write_table(metrics_to_arrow(frame), path)


# The headline metrics of ``reports/metrics.json``: (family, noise, metric) of the metrics
# table row each one reads. Names stay the same whatever the grid, so ``dvc metrics show`` and
# ``dvc exp show`` line experiments up; every other number stays in the Parquet tables.
HEADLINE_ROWS: dict[str, tuple[str, str, str]] = {
    "clean_accuracy": ("clean", "", "accuracy"),
    "pgd_linf_robust_accuracy": ("adversarial", "pgd_linf", "robust_accuracy"),
    "autoattack_robust_accuracy": ("adversarial", "autoattack", "robust_accuracy"),
    "wcar": ("adversarial", "all_attacks", "wcar"),
    "mce": ("natural", "imagenet_c", "mce"),
    "relative_mce": ("natural", "imagenet_c", "relative_mce"),
    "mfr": ("natural", "all_perturbations", "mfr"),
    "nsd": ("system", "all_variants", "nsd"),
    "params": ("complexity", "", "params"),
    "macs": ("complexity", "", "macs"),
}
SANITY_KEYS = ("sanity_passed", "sanity_total")
HEADLINE_KEYS: tuple[str, ...] = (*HEADLINE_ROWS, *SANITY_KEYS)
COUNT_KEYS = ("params", "macs", *SANITY_KEYS)  # written as integers
_KEY_OF_ROW = {row: key for key, row in HEADLINE_ROWS.items()}


def metric_key(family: str, noise: str, metric: str) -> str | None:
    """The ``metrics.json`` headline key a metrics-table row feeds, or None for the rows that
    stay in Parquet only: ``clean_accuracy``, ``pgd_linf_robust_accuracy``, ``wcar``, ``mce``
    (``imagenet_c``, baseline-normalised), ``mfr``, ``nsd``, ``params``, ...

    Adversarial keys have one row per eps; :func:`metrics_json` keeps the largest eps."""
    return _KEY_OF_ROW.get((family, noise, metric))


Run = tuple[str, str, str]
Headline = dict[str, float | int | None]


def _headline_value(key: str, value: float) -> float | int | None:
    if math.isnan(value):
        return None
    return int(round(value)) if key in COUNT_KEYS else round(value, 4)


def _sanity_counts(sanity: pd.DataFrame | None) -> dict[Run, tuple[int, int]]:
    if sanity is None or not len(sanity):
        return {}
    missing = [c for c in ("dataset", "arch", "technique", "passed") if c not in sanity.columns]
    if missing:
        raise ValueError(f"sanity table lacks column(s) {', '.join(missing)}; rerun stages.sanity")
    counts = sanity.groupby(["dataset", "arch", "technique"], sort=True)["passed"].agg(
        ["sum", "size"]
    )
    return {
        (str(d), str(a), str(t)): (int(row["sum"]), int(row["size"]))
        for (d, a, t), row in counts.iterrows()
    }


def headline_metrics(
    frame: pd.DataFrame, sanity: pd.DataFrame | None = None, runs: Iterable[Run] = ()
) -> dict[Run, Headline]:
    """Per run, the :data:`HEADLINE_KEYS` values (None where the tables lack the number).

    Runs: those of ``runs``, ``frame`` and ``sanity``. Adversarial keys take the row of the
    largest eps of that attack (WCAR: of the L-inf attacks); sanity counts are the checks
    passed and run in ``sanity`` (``results/sanity.parquet``)."""
    out: dict[Run, Headline] = {}
    all_runs = set(runs)
    all_runs |= set(zip(frame["dataset"], frame["arch"], frame["technique"], strict=True))
    counts = _sanity_counts(sanity)
    all_runs |= set(counts)
    for run in sorted(all_runs):
        out[(str(run[0]), str(run[1]), str(run[2]))] = dict.fromkeys(HEADLINE_KEYS)
    ordered = frame.sort_values(SORT_COLUMNS, na_position="first", kind="mergesort")
    for row in ordered.itertuples(index=False):
        key = metric_key(str(row.family), str(row.noise), str(row.metric))
        if key is not None:  # rows sorted by level: the largest eps comes last
            run = (str(row.dataset), str(row.arch), str(row.technique))
            out[run][key] = _headline_value(key, float(row.value))
    for run, (passed, total) in counts.items():
        out[run]["sanity_passed"] = passed
        out[run]["sanity_total"] = total
    return out


def metrics_json(
    frame: pd.DataFrame, sanity: pd.DataFrame | None = None, runs: Iterable[Run] = ()
) -> dict[str, dict[str, Headline]]:
    """``{dataset: {"arch/technique": {key: value}}}``: the :data:`HEADLINE_KEYS` of every run
    (:func:`headline_metrics`), rates rounded to 4 decimals, counts as integers. A number the
    tables lack is left out rather than written as null: DVC drops null metrics, so a null
    would make ``dvc exp show`` disagree with the file (it shows "-" for an absent key)."""
    out: dict[str, dict[str, Headline]] = {}
    for (dataset, arch, technique), values in headline_metrics(frame, sanity, runs).items():
        present = {key: value for key, value in values.items() if value is not None}
        out.setdefault(dataset, {})[f"{arch}/{technique}"] = present
    return out
