"""Draw the report figures from the tidy metrics table.

python -m stages.figures --metrics results/metrics.parquet --out-dir reports/figures
    [--cards models/D/A/T/card.json ...]

Writes ``accuracy_by_noise_family.png``, ``robust_accuracy_vs_eps.png`` and
``corruption_accuracy_vs_severity.png`` atomically. The architecture family that colours each
model (cnn/transformer/mlp) comes from the model cards given with ``--cards``; an architecture
without a card is drawn grey as "unknown".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from robustlab.io import read_frame
from robustlab.metrics.table import validate_metrics_frame
from robustlab.report.figures import arch_families_from_cards, write_figures


def read_cards(paths: list[Path]) -> list[dict[str, Any]]:
    """Model cards; the error names a missing file or key."""
    cards = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; it is written by stages.train")
        card = json.loads(path.read_text())
        for key in ("arch", "family"):
            if key not in card:
                raise ValueError(f"{path}: lacks key {key!r}; rerun stages.train for this run")
        # a named variant (sweeps, architectures: entries with `arch`) appears under its name
        cards.append({**card, "arch": card.get("arch_name", card["arch"])})
    return cards


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.figures", description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--out-dir", type=Path, required=True, help="reports/figures")
    parser.add_argument("--cards", type=Path, nargs="*", default=[], help="model card.json files")
    args = parser.parse_args(argv)
    frame = read_frame(args.metrics)
    try:
        validate_metrics_frame(frame)
    except ValueError as err:
        raise ValueError(f"{args.metrics}: {err}; rerun stages.aggregate") from err
    write_figures(frame, args.out_dir, arch_families_from_cards(read_cards(args.cards)))


if __name__ == "__main__":
    main()
