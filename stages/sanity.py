"""Evaluation sanity checks of every run, from stored outcomes; one table for the report.

python -m stages.sanity --results-dir results --run D/A/T [...] --attack fgsm [...]
    --reference pgd_linf --settings '{"tolerance_se": 2, ...}' --out results/sanity.parquet

Reads per run ``clean.parquet``, ``adversarial/{attack}.parquet`` (with its ``attack_flags``
and ``attack_stages`` metadata), ``probes.parquet``, ``probes.json`` and (where present)
``transfer.parquet``. Columns: dataset, arch, technique,
check, passed, value, threshold, detail (robustlab.metrics.sanity). A failed check is a row
with passed = false, shown in the report; it does not stop the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from robustlab.io import read_frame, write_frame
from robustlab.metrics.sanity import SANITY_COLUMNS, SanitySettings, sanity_rows
from stages.common import json_object, parse_run

SETTING_KEYS = ("tolerance_se", "large_eps", "standard_max_accuracy", "max_zero_gradient_share")
# the flags of pyautoattack's checks reach the sanity table from the AutoAttack job's outcomes


def attack_flags(folder: Path, attacks: list[str]) -> list[str] | None:
    """pyautoattack's check flags stored by the attacks that ran it (None: none did)."""
    found = None
    for name in attacks:
        metadata = pq.read_schema(folder / "adversarial" / f"{name}.parquet").metadata or {}
        raw = metadata.get(b"attack_flags")
        if raw is not None:
            flags = json.loads(raw)
            found = (found or []) + [
                f"{name}: {key}: {text}" for key, text in sorted(flags.items())
            ]
    return found


def attack_stages(folder: Path, attacks: list[str]) -> dict[str, list[str]]:
    """The stages of the attacks made of stages (AutoAttack), from their ``attack_stages``."""
    found = {}
    for name in attacks:
        metadata = pq.read_schema(folder / "adversarial" / f"{name}.parquet").metadata or {}
        raw = metadata.get(b"attack_stages")
        if raw is not None:
            found[name] = list(json.loads(raw))
    return found


def run_checks(
    results_dir: Path,
    run: tuple[str, str, str],
    attacks: list[str],
    reference: str,
    settings: SanitySettings,
) -> pd.DataFrame:
    """Sanity rows of one run, with its dataset, arch and technique."""
    folder = results_dir.joinpath(*run)
    adv = pd.concat(
        [read_frame(folder / "adversarial" / f"{name}.parquet") for name in attacks],
        ignore_index=True,
    )
    transfer_path = folder / "transfer.parquet"
    model_path = folder / "probes.json"
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path}: missing; it is written by stages.probe")
    model_probes = json.loads(model_path.read_text())
    flags = attack_flags(folder, attacks)
    if flags is not None:
        model_probes["autoattack_flags"] = flags
    rows = sanity_rows(
        read_frame(folder / "clean.parquet"),
        adv,
        read_frame(folder / "probes.parquet"),
        model_probes,
        read_frame(transfer_path) if transfer_path.exists() else None,
        (run[1], run[2]),
        reference,
        settings,
        attack_stages(folder, attacks),
    )
    return rows.assign(dataset=run[0], arch=run[1], technique=run[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.sanity", description=__doc__)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--run", type=parse_run, action="append", required=True)
    parser.add_argument("--attack", action="append", required=True)
    parser.add_argument("--reference", default="pgd_linf")
    parser.add_argument("--settings", type=json_object, default={})
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.reference not in args.attack:
        parser.error(f"--reference {args.reference}: not among --attack values")
    settings = SanitySettings(**{k: v for k, v in args.settings.items() if k in SETTING_KEYS})
    frames = [
        run_checks(args.results_dir, run, args.attack, args.reference, settings) for run in args.run
    ]
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[["dataset", "arch", "technique", *SANITY_COLUMNS]]
    frame = frame.sort_values(["dataset", "arch", "technique", "check", "detail"], kind="mergesort")
    failed = frame[~frame["passed"]]
    for row in failed.itertuples():
        print(
            f"sanity check failed: {row.dataset}/{row.arch}/{row.technique} {row.check}: "
            f"{row.detail} (value {row.value:.4g}, bound {row.threshold:.4g})",
            file=sys.stderr,
        )
    write_frame(frame.reset_index(drop=True), args.out)


if __name__ == "__main__":
    main()
