"""The DVC metrics file: a handful of headline numbers per run, from the tables.

python -m stages.headline --metrics results/metrics.parquet [--sanity results/sanity.parquet]
    [--run D/A/T ...] --out reports/metrics.json

Writes ``{dataset: {arch/technique: {key: value}}}`` atomically with the same 12 keys for every
run (robustlab.metrics.table.HEADLINE_KEYS: clean and robust accuracy, WCAR, mCE, relative mCE,
mFR, NSD, params, MACs, sanity checks passed and run), leaving out a number the tables lack, so
``dvc metrics show`` and ``dvc exp show`` stay readable. Every other number stays in
``results/metrics.parquet``. A missing ``--sanity`` file leaves the sanity counts out, with a
warning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustlab.io import read_frame, write_json
from robustlab.metrics.table import metrics_json
from stages.common import parse_run, read_metrics, require_input


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.headline", description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--sanity", type=Path, default=None, help="results/sanity.parquet")
    parser.add_argument(
        "--run",
        type=parse_run,
        action="append",
        default=[],
        metavar="D/A/T",
        help="a run listed even without rows (repeat); the tables' runs are always listed",
    )
    parser.add_argument("--out", type=Path, required=True, help="reports/metrics.json")
    args = parser.parse_args(argv)
    frame = read_metrics(require_input(args.metrics))
    sanity = None
    if args.sanity is not None:
        if args.sanity.exists():
            sanity = read_frame(args.sanity)
        else:
            print(
                f"warning: {args.sanity}: missing (written by stages.sanity); "
                "sanity_passed and sanity_total are left out",
                file=sys.stderr,
            )
    write_json(metrics_json(frame, sanity, args.run), args.out)


if __name__ == "__main__":
    main()
