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
from pathlib import Path

from robustlab.report.figures import arch_families_from_cards, write_figures
from stages.common import read_cards, read_metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.figures", description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--out-dir", type=Path, required=True, help="reports/figures")
    parser.add_argument("--cards", type=Path, nargs="*", default=[], help="model card.json files")
    args = parser.parse_args(argv)
    frame = read_metrics(args.metrics)
    write_figures(frame, args.out_dir, arch_families_from_cards(read_cards(args.cards)))


if __name__ == "__main__":
    main()
