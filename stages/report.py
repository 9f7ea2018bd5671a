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
import platform
from importlib import metadata
from pathlib import Path

from robustlab.io import atomic_path
from stages.common import add_input_arguments, read_inputs

VERSIONED = ("robustlab", "torch", "numpy", "pandas", "pyarrow", "matplotlib", "scipy")


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
