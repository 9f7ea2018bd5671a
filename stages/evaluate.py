"""Every prediction-only evaluation of one trained model, in one job: clean, corrupted,
perturbation sequences, system-noise variants (fp32, eval mode).

python -m stages.evaluate --model-dir models/D/A/T
    --table results/D/A/T/clean.parquet data/prepared/D/test.parquet
    --table results/D/A/T/natural.parquet data/noisy/D/fog.parquet data/noisy/D/snow.parquet
    [--table OUT IN [IN ...] ...] --batch-size 500 --threads 1

Each ``--table OUT IN...`` writes the predictions on the image tables IN to OUT (columns of
robustlab.outcome_tables.evaluate_tables: the inputs' extra columns, then index, label,
prediction, correct; one row per input row, tables in the order given). The IN tables of one
OUT must have the same extra columns, and images the size the model card names. Loading the
model and torch once for all of them keeps the many small evaluations of a grid cheap; every
output is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustlab.io import write_frame
from robustlab.outcome_tables import evaluate_tables, extra_columns
from stages.common import load_eval_model, read_card

PROG = "stages.evaluate"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument(
        "--table",
        nargs="+",
        action="append",
        required=True,
        metavar=("OUT", "IN"),
        help="an output table and the image tables it predicts",
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    for group in args.table:
        if len(group) < 2:
            parser.error(f"--table {group[0]}: give the output and at least one image table")
        try:
            extra_columns(group[1:])  # fail on a bad table before any work
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"{PROG}: {err}") from None
    outputs = [group[0] for group in args.table]
    if len(set(outputs)) != len(outputs):
        parser.error("--table: an output is named twice")

    card_path = args.model_dir / "card.json"
    card = read_card(card_path, required=()) if card_path.exists() else {}
    model, device = load_eval_model(args.model_dir, args.threads)
    for out, *inputs in args.table:
        try:
            frame = evaluate_tables(
                model,
                device,
                inputs,
                args.batch_size,
                image_size=card.get("image_size"),
                channels=card.get("in_channels"),
                progress=not args.no_progress,
            )
        except ValueError as err:
            raise SystemExit(f"{PROG}: model {args.model_dir}: {err}") from None
        write_frame(frame, out)


if __name__ == "__main__":
    main()
