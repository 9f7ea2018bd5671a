"""Tidy plot data for DVC (``dvc plots show`` / ``dvc plots diff``) drawn from the tables.

One CSV per kind and run, ``reports/plots/{kind}/{dataset}/{arch}/{technique}.csv``, with a
``series`` column (the line a row belongs to), the x column and the y column of the kind
(:data:`PLOT_KINDS`); ``dvc.yaml`` declares each kind's folder with x, y and the template
``.dvc/plots/series.json``, which draws one line per series and, in ``dvc plots diff``, one
dash style per experiment. Rows are sorted and numbers formatted with 6 significant digits, so
identical tables give byte-identical files. The PNG figures and the HTML report are separate.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from robustlab.io import atomic_path

Run = tuple[str, str, str]  # (dataset, arch, technique)


@dataclass(frozen=True)
class PlotKind:
    """One kind of plot file: its folder name under ``reports/plots`` and its columns."""

    name: str
    x: str
    y: str
    extra: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        """The file's columns: ``series``, x, y, then the extra (tooltip) columns."""
        return ["series", self.x, self.y, *self.extra]


ROBUST_ACCURACY = PlotKind("robust_accuracy_vs_eps", "eps", "robust_accuracy")
TRAINING = PlotKind("training", "epoch", "accuracy")
SEVERITY = PlotKind("accuracy_vs_severity", "severity", "accuracy")
CRITICALITY = PlotKind("criticality", "layer_index", "criticality", ("layer_name", "selected"))
PLOT_KINDS: tuple[PlotKind, ...] = (ROBUST_ACCURACY, TRAINING, SEVERITY, CRITICALITY)
# history.parquet's accuracy columns drawn as training curves (NaN epochs are left out)
HISTORY_SERIES = ("train_accuracy", "train_adv_accuracy", "val_accuracy", "val_pgd_accuracy")


def _of_run(metrics: pd.DataFrame, run: Run) -> pd.DataFrame:
    dataset, arch, technique = run
    keep = (
        (metrics["dataset"] == dataset)
        & (metrics["arch"] == arch)
        & (metrics["technique"] == technique)
    )
    return metrics[keep]


def _tidy(kind: PlotKind, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[kind.columns]
    frame = frame[frame[kind.y].notna()]
    frame = frame.sort_values(["series", kind.x], kind="mergesort")
    return frame.reset_index(drop=True)


def robust_accuracy_rows(metrics: pd.DataFrame, run: Run) -> pd.DataFrame:
    """Robust accuracy (%) of every attack (``series``) at every eps of one run."""
    rows = _of_run(metrics, run)
    rows = rows[(rows["family"] == "adversarial") & (rows["metric"] == "robust_accuracy")]
    frame = pd.DataFrame(
        {"series": rows["noise"], "eps": rows["level"], "robust_accuracy": rows["value"]}
    )
    return _tidy(ROBUST_ACCURACY, frame)


def severity_rows(metrics: pd.DataFrame, run: Run) -> pd.DataFrame:
    """Accuracy (%) of every corruption (``series``) at every severity of one run."""
    rows = _of_run(metrics, run)
    rows = rows[
        (rows["family"] == "natural") & (rows["metric"] == "accuracy") & rows["level"].notna()
    ]
    frame = pd.DataFrame(
        {"series": rows["noise"], "severity": rows["level"], "accuracy": rows["value"]}
    )
    return _tidy(SEVERITY, frame)


def training_rows(history: pd.DataFrame) -> pd.DataFrame:
    """Training curves of one run from ``history.parquet``: one series per accuracy column
    (:data:`HISTORY_SERIES`), x the epoch, y the accuracy (%)."""
    missing = [c for c in ("epoch", *HISTORY_SERIES) if c not in history.columns]
    if missing:
        raise ValueError(f"history table lacks column(s) {', '.join(missing)}; rerun stages.train")
    parts = [
        pd.DataFrame({"series": name, "epoch": history["epoch"], "accuracy": history[name]})
        for name in HISTORY_SERIES
    ]
    return _tidy(TRAINING, pd.concat(parts, ignore_index=True))


def criticality_rows(criticality: pd.DataFrame) -> pd.DataFrame:
    """CLAT's criticality (Eq. 6) per layer, one series per measurement (``epoch N``)."""
    need = ("epoch", "layer_index", "layer_name", "criticality", "selected")
    missing = [c for c in need if c not in criticality.columns]
    if missing:
        raise ValueError(
            f"criticality table lacks column(s) {', '.join(missing)}; rerun stages.clat"
        )
    frame = criticality.assign(series=[f"epoch {int(e)}" for e in criticality["epoch"]])
    # sort by epoch number, not by the text ("epoch 10" after "epoch 9")
    frame = frame.sort_values(["epoch", "layer_index"], kind="mergesort")
    frame = frame[frame["criticality"].notna()]
    return frame[CRITICALITY.columns].reset_index(drop=True)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    return str(value)


def to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text with a header: numbers with 6 significant digits, booleans
    ``true``/``false``, ``\\n`` line ends, so identical frames give identical text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(frame.columns))
    for row in frame.itertuples(index=False):
        writer.writerow([_cell(v.item() if hasattr(v, "item") else v) for v in row])
    return buffer.getvalue()


def plot_path(out_dir: str | os.PathLike[str], kind: PlotKind, run: Run) -> Path:
    """``{out_dir}/{kind}/{dataset}/{arch}/{technique}.csv``."""
    dataset, arch, technique = run
    return Path(out_dir) / kind.name / dataset / arch / f"{technique}.csv"


def plot_frames(
    metrics: pd.DataFrame,
    runs: list[Run],
    histories: Mapping[Run, pd.DataFrame],
    criticality: Mapping[Run, pd.DataFrame],
) -> dict[tuple[str, Run], pd.DataFrame]:
    """Every plot file's rows, keyed by (kind name, run): robust accuracy, severity and
    training curves for every run; criticality for the runs in ``criticality`` (CLAT runs).
    A kind with no rows for a run (no corruptions in the grid, say) has no file."""
    frames: dict[tuple[str, Run], pd.DataFrame] = {}
    for run in runs:
        frames[(ROBUST_ACCURACY.name, run)] = robust_accuracy_rows(metrics, run)
        frames[(SEVERITY.name, run)] = severity_rows(metrics, run)
        if run in histories:
            frames[(TRAINING.name, run)] = training_rows(histories[run])
        if run in criticality:
            frames[(CRITICALITY.name, run)] = criticality_rows(criticality[run])
    return {key: frame for key, frame in frames.items() if len(frame)}


def write_plots(
    frames: Mapping[tuple[str, Run], pd.DataFrame], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write every frame atomically to its :func:`plot_path`; remove the other ``*.csv`` files
    under the kinds' folders (left by an earlier grid). Every kind's folder exists afterwards,
    so ``dvc plots show`` finds each folder dvc.yaml names. Returns the paths written, sorted."""
    kinds = {k.name: k for k in PLOT_KINDS}
    written = []
    for (name, run), frame in sorted(frames.items()):
        path = plot_path(out_dir, kinds[name], run)
        with atomic_path(path) as tmp:
            tmp.write_text(to_csv(frame))
        written.append(path)
    keep = set(written)
    for kind in PLOT_KINDS:
        folder = Path(out_dir) / kind.name
        folder.mkdir(parents=True, exist_ok=True)
        for stale in sorted(folder.rglob("*.csv")):
            if stale not in keep:
                stale.unlink()
    return sorted(written)
