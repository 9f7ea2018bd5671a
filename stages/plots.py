"""Tidy plot data for ``dvc plots show`` / ``dvc plots diff``, from the tables.

python -m stages.plots --metrics results/metrics.parquet --models-dir models
    --results-dir results --run D/A/T [...] --out-dir reports/plots

Writes ``{out-dir}/{kind}/{dataset}/{arch}/{technique}.csv`` atomically
(robustlab.report.dvc_plots): ``robust_accuracy_vs_eps`` and ``accuracy_vs_severity`` from the
metrics table, ``training`` from each run's ``history.parquet`` and, for CLAT runs (technique
``X+clat``), ``criticality`` from ``results/{run}/criticality.parquet``. A kind without rows for
a run has no file; other CSV files under the kinds' folders (an earlier grid's) are removed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustlab.io import read_frame
from robustlab.report.dvc_plots import plot_frames, write_plots
from robustlab.variants import variant_from_card
from stages.common import parse_run, read_card, read_metrics, require_input


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.plots", description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--run", type=parse_run, action="append", required=True, metavar="D/A/T")
    parser.add_argument("--out-dir", type=Path, required=True, help="reports/plots")
    args = parser.parse_args(argv)
    if len(set(args.run)) != len(args.run):
        parser.error("--run: a run is listed twice")
    metrics = read_metrics(require_input(args.metrics))
    histories = {
        run: read_frame(require_input(args.models_dir.joinpath(*run) / "history.parquet"))
        for run in args.run
    }
    criticality = {
        run: read_frame(require_input(args.results_dir.joinpath(*run) / "criticality.parquet"))
        for run in args.run
        if _is_clat(args.models_dir, run)
    }
    write_plots(plot_frames(metrics, args.run, histories, criticality), args.out_dir)


def _is_clat(models_dir: Path, run: tuple[str, str, str]) -> bool:
    """A CLAT run (X+clat or a named CLAT variant), as its card says when it has one."""
    path = models_dir.joinpath(*run) / "card.json"
    card = read_card(path, required=()) if path.exists() else {}
    return variant_from_card(run[2], card).is_clat


if __name__ == "__main__":
    main()
