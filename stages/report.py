"""Write the self-contained HTML report from the pipeline's tables and the figures.

python -m stages.report --metrics results/metrics.parquet --figures-dir reports/figures
    --out reports/index.html [--models-dir models --results-dir results --run D/A/T ...]
    [--sanity results/sanity.parquet] [--transfer results/transfer.parquet]
    [--comparisons results/comparisons.parquet]
    [--test-tables data/prepared/D/test.parquet ...] [--attack-norm NAME=NORM ...]
    [--git-revision REV] [--params-hash HASH] [--params-file params.yaml] [--title TEXT]
    [--config-note TEXT ...]

Reads, per run, ``models/{run}/card.json`` and ``history.parquet`` and, for ``X+clat`` runs,
``results/{run}/criticality.parquet`` (and X's history when present). Without ``--run``, the
runs are those of the metrics table. Embeds every figure the tables support from
``--figures-dir`` (an absent one is an error naming it). The footer shows the given revision
and hash, the params file's sha256 and text, library versions, the test tables' checksums and
sizes; no timestamp, so identical inputs give an identical page. Imports no torch unless the
grid has a RobustResNet block ablation (its defaults come from robustlab.models).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from robustlab.io import atomic_path, read_frame
from robustlab.metrics.comparisons import COLUMNS as COMPARISON_COLUMNS
from robustlab.metrics.table import validate_metrics_frame
from robustlab.report.data import DatasetInfo, ReportData, Run, dataset_info
from robustlab.report.plan import CLAT_SUFFIX

VERSIONED = ("robustlab", "torch", "numpy", "pandas", "pyarrow", "matplotlib", "scipy")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming the tables both the figures and the report stage read."""
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--transfer", type=Path, default=None, help="results/transfer.parquet")
    parser.add_argument("--sanity", type=Path, default=None, help="results/sanity.parquet")
    parser.add_argument(
        "--comparisons", type=Path, default=None, help="results/comparisons.parquet"
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument(
        "--run",
        action="append",
        default=None,
        metavar="D/A/T",
        help="a run (repeat); default: every run of the metrics table",
    )
    parser.add_argument(
        "--attack-norm",
        action="append",
        default=[],
        metavar="NAME=NORM",
        help="an attack's norm (linf, l2, l1), for axis labels",
    )


def _run(text: str) -> Run:
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise SystemExit(f"--run {text!r}: expected dataset/arch/technique")
    return (parts[0], parts[1], parts[2])


def read_card(path: Path) -> dict[str, Any]:
    """A model card; ``arch`` becomes the run's (variant) name, ``arch_base`` the registered
    architecture. The error names a missing file or key."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; it is written by stages.train")
    card = json.loads(path.read_text())
    for key in ("arch", "family"):
        if key not in card:
            raise ValueError(f"{path}: lacks key {key!r}; rerun stages.train for this run")
    return {**card, "arch_base": card["arch"], "arch": card.get("arch_name", card["arch"])}


def _attack_norms(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, norm = item.partition("=")
        if not sep or norm.lower() not in ("linf", "l2", "l1"):
            raise SystemExit(f"--attack-norm {item!r}: expected NAME=linf, NAME=l2 or NAME=l1")
        out[name] = norm.lower()
    return out


def read_inputs(args: argparse.Namespace, test_tables: list[Path] | None = None) -> ReportData:
    """Every table and card the figures and the report are drawn from."""
    metrics = read_frame(args.metrics)
    try:
        validate_metrics_frame(metrics)
    except ValueError as err:
        raise ValueError(f"{args.metrics}: {err}; rerun stages.aggregate") from err
    data = ReportData(metrics=metrics, attack_norms=_attack_norms(args.attack_norm))
    runs = [_run(r) for r in args.run] if args.run else data.runs
    for run in runs:
        model_dir = args.models_dir.joinpath(*run)
        data.cards[run] = read_card(model_dir / "card.json")
        if (model_dir / "history.parquet").exists():
            data.histories[run] = read_frame(model_dir / "history.parquet")
        if run[2].endswith(CLAT_SUFFIX):
            data.criticality[run] = read_frame(
                args.results_dir.joinpath(*run) / "criticality.parquet"
            )
            if run not in data.histories:
                raise FileNotFoundError(
                    f"{model_dir / 'history.parquet'}: missing; it is written by stages.clat"
                )
            base = (run[0], run[1], run[2][: -len(CLAT_SUFFIX)])
            base_history = args.models_dir.joinpath(*base) / "history.parquet"
            if base not in data.histories and base_history.exists():
                data.histories[base] = read_frame(base_history)
    if args.transfer is not None:
        data.transfer = read_frame(args.transfer)
    if args.sanity is not None:
        data.sanity = read_frame(args.sanity)
    if args.comparisons is not None:
        data.comparisons = read_frame(args.comparisons)
        missing = [c for c in COMPARISON_COLUMNS if c not in data.comparisons.columns]
        if missing:
            raise ValueError(
                f"{args.comparisons}: lacks column(s) {', '.join(missing)}; rerun stages.compare"
            )
    for path in test_tables or []:
        data.datasets[path.parent.name] = read_dataset_info(path)
    return data


def read_dataset_info(path: Path) -> DatasetInfo:
    """Row count and schema metadata of a prepared test table (images are not read)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; it is written by stages.prepare")
    parquet = pq.ParquetFile(path)
    return dataset_info(parquet.schema_arrow.metadata or {}, parquet.metadata.num_rows)


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries behind the numbers (from package metadata, so
    torch is not imported)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_figures(folder: Path, names: list[str]) -> dict[str, bytes]:
    """``{name: PNG bytes}``; the error names an absent figure."""
    figures = {}
    for name in names:
        path = folder / f"{name}.png"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; it is written by stages.figures")
        figures[name] = path.read_bytes()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(parser)
    parser.add_argument("--figures-dir", type=Path, required=True, help="reports/figures")
    parser.add_argument("--out", type=Path, required=True, help="reports/index.html")
    parser.add_argument(
        "--test-tables",
        type=Path,
        nargs="*",
        default=[],
        help="data/prepared/{dataset}/test.parquet (checksums, sizes)",
    )
    parser.add_argument("--git-revision", default=None)
    parser.add_argument("--params-hash", default=None)
    parser.add_argument("--params-file", type=Path, default=None)
    parser.add_argument(
        "--config-note",
        action="append",
        default=[],
        help="what resolving params.yaml adjusted (e.g. a subset size above its split); repeatable",
    )
    parser.add_argument("--title", default="robustlab report")
    args = parser.parse_args(argv)

    from robustlab.report.html import render_report

    data = read_inputs(args, args.test_tables)
    figures = read_figures(args.figures_dir, data.figure_names())
    provenance = {}
    if args.git_revision is not None:
        provenance["git revision"] = args.git_revision
    if args.params_hash is not None:
        provenance["params hash"] = args.params_hash
    if args.config_note:
        provenance["configuration notes"] = "; ".join(args.config_note)
    params_text = None
    if args.params_file is not None:
        if not args.params_file.exists():
            raise FileNotFoundError(f"{args.params_file}: --params-file does not exist")
        raw = args.params_file.read_bytes()
        provenance["params file"] = args.params_file.name
        provenance["params file sha256"] = hashlib.sha256(raw).hexdigest()
        params_text = raw.decode("utf-8", errors="replace")
    page = render_report(data, figures, library_versions(), provenance, params_text, args.title)
    with atomic_path(args.out) as tmp:
        tmp.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    main()
