"""Aggregate stored per-example outcomes of every run into the tidy metrics table.

Reads, per run ``dataset/arch/technique``: ``{results-dir}/{run}/clean.parquet``,
``adversarial/{attack}.parquet`` for every ``--attack``, ``natural.parquet``, ``transfer.parquet``
(when ``--out-transfer`` is given) and ``{models-dir}/{run}/card.json``, ``history.parquet``.
Writes ``results/metrics.parquet`` (DESIGN's contract) and ``results/transfer.parquet``
(transfer ASR of every source -> target pair), atomically. The DVC metrics file
``reports/metrics.json`` is written from these tables by stages.headline.

A ``--baseline dataset=arch/technique`` names the run whose errors normalise mCE for that
dataset; it must be one of the ``--run`` values (so Snakemake sees its files as inputs),
otherwise the normalised rows are left out with a warning. Each run is compared with the
baseline on the images both evaluated (joined on the image index).

The ``imagenet_c`` rows (mCE) average the ImageNet-C corruptions evaluated; when some of its 15
are missing a warning names them: those rows are then not comparable with published mCE values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from robustlab.io import read_frame, write_frame
from robustlab.metrics.natural import CORRUPTION_SETS, IMAGENET_C, missing_corruptions
from robustlab.metrics.table import (
    RunOutcomes,
    finalize_metrics,
    run_metrics,
    write_metrics,
)
from robustlab.metrics.transfer import finalize_transfer, transfer_asr
from stages.common import parse_run, read_card, read_outcomes, require_input


def parse_baseline(text: str) -> tuple[str, tuple[str, str]]:
    """``dataset=arch/technique`` -> (dataset, (arch, technique)), or a clear error."""
    dataset, sep, model = text.partition("=")
    arch, slash, technique = model.partition("/")
    if not (sep and slash and dataset and arch and technique) or "/" in technique:
        raise argparse.ArgumentTypeError(
            f"--baseline {text!r}: expected dataset=arch/technique, e.g. cifar10=resnet18/standard"
        )
    return dataset, (arch, technique)


def transfer_rows(results_dir: Path, runs: list[tuple[str, str, str]]) -> pd.DataFrame:
    """``results/transfer.parquet`` rows of every target run."""
    frames = []
    for run in runs:
        folder = results_dir.joinpath(*run)
        outcomes = read_frame(require_input(folder / "transfer.parquet"))
        clean = read_frame(require_input(folder / "clean.parquet"))
        frames.append(transfer_asr(*run, outcomes, clean))
    return finalize_transfer(frames)


CARD_KEYS = ("params", "macs", "trainable_params", "family")


def imagenet_c_warnings(outcomes: dict[tuple[str, str, str], RunOutcomes]) -> list[str]:
    """One warning per dataset whose runs evaluated some but not all 15 ImageNet-C corruptions."""
    total = len(CORRUPTION_SETS[IMAGENET_C])
    messages = []
    for run, out in outcomes.items():
        evaluated = set(out.natural["corruption"].astype(str)) if len(out.natural) else set()
        missing = missing_corruptions(evaluated, IMAGENET_C)
        if 0 < len(missing) < total:
            messages.append(
                f"warning: {run[0]}: the {IMAGENET_C} rows (mce, relative_mce, "
                f"mce_unnormalised, accuracy) average {total - len(missing)} of the {total} "
                "ImageNet-C "
                f"corruptions (missing: {', '.join(missing)}); they are not comparable with "
                "published mCE values"
            )
    return sorted(set(messages))


def aggregate(
    results_dir: Path,
    models_dir: Path,
    runs: list[tuple[str, str, str]],
    baselines: dict[str, tuple[str, str]],
    attacks: list[str],
    stability: bool = False,
    system: bool = False,
) -> pd.DataFrame:
    """The validated, sorted metrics table of ``runs``."""
    if len(set(runs)) != len(runs):
        raise ValueError("--run: a run is listed twice")
    outcomes = {run: read_outcomes(results_dir, run, attacks, stability, system) for run in runs}
    for dataset, (arch, technique) in sorted(baselines.items()):
        if (dataset, arch, technique) not in outcomes:
            print(
                f"warning: baseline {dataset}/{arch}/{technique} is not among the --run values; "
                f"mce/relative_mce/ce rows for {dataset} are left out",
                file=sys.stderr,
            )
    for message in imagenet_c_warnings(outcomes):
        print(message, file=sys.stderr)
    frames = []
    for run in runs:
        dataset = run[0]
        base_run = (dataset, *baselines[dataset]) if dataset in baselines else None
        frames.append(
            run_metrics(
                *run,
                outcomes[run],
                card=read_card(require_input(models_dir.joinpath(*run) / "card.json"), CARD_KEYS),
                history=read_frame(require_input(models_dir.joinpath(*run) / "history.parquet")),
                baseline=outcomes.get(base_run) if base_run else None,
            )
        )
    return finalize_metrics(frames)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.aggregate", description=__doc__)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument(
        "--run", type=parse_run, action="append", required=True, help="dataset/arch/technique"
    )
    parser.add_argument(
        "--attack", action="append", default=[], help="an attack whose outcomes to read"
    )
    parser.add_argument(
        "--baseline",
        type=parse_baseline,
        action="append",
        default=[],
        help="dataset=arch/technique normalising mCE for that dataset",
    )
    parser.add_argument(
        "--stability", action="store_true", help="read each run's stability.parquet"
    )
    parser.add_argument("--system", action="store_true", help="read each run's system.parquet")
    parser.add_argument("--out-metrics", type=Path, required=True)
    parser.add_argument("--out-transfer", type=Path, default=None, help="results/transfer.parquet")
    args = parser.parse_args(argv)
    baselines: dict[str, tuple[str, str]] = {}
    for dataset, model in args.baseline:
        if baselines.get(dataset, model) != model:
            parser.error(f"--baseline: two baselines for dataset {dataset!r}")
        baselines[dataset] = model
    frame = aggregate(
        args.results_dir,
        args.models_dir,
        args.run,
        baselines,
        args.attack,
        stability=args.stability,
        system=args.system,
    )
    if args.out_transfer is not None:
        write_frame(transfer_rows(args.results_dir, args.run), args.out_transfer)
    write_metrics(frame, args.out_metrics)


if __name__ == "__main__":
    main()
