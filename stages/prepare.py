"""Prepare a dataset split: load the official source, take a stratified subset, write the table.

python -m stages.prepare --dataset fashion_mnist --split train --size 1000 --seed 0
    [--source-dir DIR] [--download] --out data/prepared/fashion_mnist/train.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from robustlab.data import DATASETS, ImageSet, load_dataset, stratified_subset, write_images


def _size(text: str) -> int | None:
    """argparse type: a positive integer, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stages.prepare", description=__doc__)
    parser.add_argument("--dataset", required=True, choices=DATASETS.names())
    parser.add_argument("--split", required=True, choices=["train", "test"])
    parser.add_argument("--size", required=True, type=_size, help="examples to keep, or 'all'")
    parser.add_argument("--seed", required=True, type=int, help="seed of the stratified subset")
    parser.add_argument("--source-dir", type=Path, help="folder holding the source files")
    parser.add_argument("--download", action="store_true", help="fetch missing source files")
    parser.add_argument("--out", required=True, type=Path, help="the Parquet table to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        full = load_dataset(args.dataset, args.split, args.source_dir, args.download)
        keep = stratified_subset(full.labels, args.size, args.seed)
    except (OSError, ValueError) as err:
        raise SystemExit(f"stages.prepare: {err}") from None
    subset = ImageSet(
        images=full.images[keep],
        labels=full.labels[keep],
        index=full.index[keep],
        class_names=full.class_names,
        source_checksum=full.source_checksum,
    )
    write_images(subset, args.out)
    h, w, c = subset.shape
    per_class = np.bincount(subset.labels, minlength=len(subset.class_names))
    print(
        f"stages.prepare: {args.dataset}/{args.split}: {len(subset)} of {len(full)} images "
        f"({h}x{w}x{c}, {per_class.min()}-{per_class.max()} per class, seed {args.seed}) "
        f"-> {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
