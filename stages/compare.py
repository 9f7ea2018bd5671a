"""Paired comparisons between the runs of each dataset and architecture.

python -m stages.compare --results-dir results --run D/A/T ... [--attack NAME ...]
    [--seed 0] [--resamples 10000] --out results/comparisons.parquet

Reads, per run, ``{results-dir}/{run}/clean.parquet``, ``adversarial/{attack}.parquet`` for
every ``--attack`` and ``natural.parquet``; writes ``results/comparisons.parquet`` atomically
(columns ``dataset, arch, run_a, run_b, metric, noise, level, difference, ci_low, ci_high,
p_value, n``; robustlab.metrics.comparisons gives the tests and the pair orientation). Every
pair of ``--run`` values with the same dataset and architecture is compared; the mean
corruption accuracy is taken over ImageNet-C's 15 corruptions. Table-only: imports no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from robustlab.io import write_table
from robustlab.metrics.comparisons import (
    IMAGENET_C,
    RESAMPLES,
    compare_runs,
    comparisons_to_arrow,
    finalize_comparisons,
    run_pairs,
)
from stages.common import parse_run, read_outcomes

CORRUPTION_SET = "imagenet_c"


def compare(
    results_dir: Path,
    runs: list[tuple[str, str, str]],
    attacks: list[str],
    seed: int,
    resamples: int = RESAMPLES,
    clat: list[str] | None = None,
) -> pd.DataFrame:
    """The sorted comparisons table of every pair of ``runs`` sharing dataset and arch
    (``clat``: technique keys of CLAT variants, run B of their pairs)."""
    if len(set(runs)) != len(runs):
        raise ValueError("--run: a run is listed twice")
    pairs = run_pairs(runs, clat or ())
    needed = sorted({run for pair in pairs for run in pair})
    outcomes = {}
    for run in needed:
        read = read_outcomes(results_dir, run, attacks)
        outcomes[run] = {
            "clean": read.clean,
            "adversarial": read.adversarial,
            "natural": read.natural,
        }
    frames = [
        compare_runs(
            *run_a[:2],
            run_a[2],
            run_b[2],
            outcomes[run_a],
            outcomes[run_b],
            IMAGENET_C,
            CORRUPTION_SET,
            seed,
            resamples,
        )
        for run_a, run_b in pairs
    ]
    return finalize_comparisons(frames)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument(
        "--run", type=parse_run, action="append", required=True, help="dataset/arch/technique"
    )
    parser.add_argument(
        "--attack", action="append", default=[], help="an attack whose outcomes to compare"
    )
    parser.add_argument(
        "--clat-technique",
        action="append",
        default=[],
        help="a CLAT variant's technique key (without +clat): run B of its comparisons",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the bootstrap")
    parser.add_argument(
        "--resamples",
        type=int,
        default=RESAMPLES,
        help="bootstrap and sign-flip resamples of the mean corruption accuracy",
    )
    parser.add_argument("--out", type=Path, required=True, help="results/comparisons.parquet")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error("--resamples must be at least 1")
    frame = compare(
        args.results_dir, args.run, args.attack, args.seed, args.resamples, args.clat_technique
    )
    write_table(comparisons_to_arrow(frame), args.out)


if __name__ == "__main__":
    main()
