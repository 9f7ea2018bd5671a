"""Draw the report figures from the pipeline's tables.

python -m stages.figures --metrics results/metrics.parquet --out-dir reports/figures
    [--transfer results/transfer.parquet] [--models-dir models --results-dir results]
    [--run D/A/T ...] [--attack-norm NAME=NORM ...] [--names NAME ...]

Writes ``{name}.png`` atomically for each of ``--names`` (the Snakefile's FIGURE_NAMES, a
function of params.yaml; default: every figure the tables support). A name the tables cannot
support is an error naming the figure, so no figure is an empty panel. PNGs of known figures
that are not among the names (left by an earlier grid) are removed, so the folder DVC renders
holds exactly this grid's figures. Architecture families (the colours) come from the model
cards.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.common import add_input_arguments, read_inputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(parser)
    parser.add_argument("--out-dir", type=Path, required=True, help="reports/figures")
    parser.add_argument("--names", nargs="*", default=None, help="figures to draw")
    args = parser.parse_args(argv)

    from robustlab.report.figures import write_figures
    from robustlab.report.plan import ALL_FIGURES

    written = write_figures(read_inputs(args), args.out_dir, args.names)
    for name in ALL_FIGURES:
        stale = args.out_dir / f"{name}.png"
        if stale not in written and stale.exists():
            stale.unlink()


if __name__ == "__main__":
    main()
