"""Write the self-contained HTML report.

python -m stages.report --metrics results/metrics.parquet --figures-dir reports/figures
    --out reports/index.html [--cards models/D/A/T/card.json ...]
    [--git-revision REV] [--params-hash HASH] [--params-file params.yaml] [--title TEXT]

Embeds the three figures of ``stages.figures`` (an absent one is an error naming it). The
provenance footer shows the given revision and hash, the params file's sha256 and text, and
library versions; no timestamp, so identical inputs give an identical page.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import matplotlib

from robustlab.io import atomic_path, read_frame
from robustlab.report.figures import FIGURE_NAMES, arch_families_from_cards
from robustlab.report.html import render_report
from stages.common import library_versions, read_cards, read_metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--figures-dir", type=Path, required=True, help="reports/figures")
    parser.add_argument("--out", type=Path, required=True, help="reports/index.html")
    parser.add_argument("--cards", type=Path, nargs="*", default=[], help="model card.json files")
    parser.add_argument("--git-revision", default=None)
    parser.add_argument("--params-hash", default=None)
    parser.add_argument("--params-file", type=Path, default=None)
    parser.add_argument("--title", default="robustlab report")
    parser.add_argument("--sanity", type=Path, default=None, help="results/sanity.parquet")
    parser.add_argument("--transfer", type=Path, default=None, help="results/transfer.parquet")
    args = parser.parse_args(argv)

    frame = read_metrics(args.metrics)
    figures = {}
    for name in FIGURE_NAMES:
        path = args.figures_dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; it is written by stages.figures")
        figures[name] = path.read_bytes()
    provenance = {}
    if args.git_revision is not None:
        provenance["git revision"] = args.git_revision
    if args.params_hash is not None:
        provenance["params hash"] = args.params_hash
    params_text = None
    if args.params_file is not None:
        if not args.params_file.exists():
            raise FileNotFoundError(f"{args.params_file}: --params-file does not exist")
        raw = args.params_file.read_bytes()
        provenance["params file"] = args.params_file.name
        provenance["params file sha256"] = hashlib.sha256(raw).hexdigest()
        params_text = raw.decode("utf-8", errors="replace")
    robust = frame[(frame["family"] == "adversarial") & (frame["metric"] == "robust_accuracy")]
    for (dataset, attack), group in robust.groupby(["dataset", "noise"], sort=True):
        eps = ", ".join(f"{e:g}" for e in sorted(group["level"].unique()))
        points = ", ".join(str(n) for n in sorted(group["n"].unique()))
        provenance[f"attack {attack} ({dataset})"] = f"eps {eps} on {points} test images"
    versions = {**library_versions(), "matplotlib": matplotlib.__version__}
    page = render_report(
        frame,
        figures,
        arch_families_from_cards(read_cards(args.cards)),
        versions,
        provenance=provenance,
        params_text=params_text,
        title=args.title,
        sanity=read_frame(args.sanity) if args.sanity is not None else None,
        transfer=read_frame(args.transfer) if args.transfer is not None else None,
    )
    with atomic_path(args.out) as tmp:
        tmp.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    main()
