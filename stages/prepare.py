"""Prepare a dataset split: load the source, take a stratified subset, write the table.

python -m stages.prepare --dataset fashion_mnist --split train --size 1000 --seed 0
    [--source-dir DIR] [--download] --out data/prepared/fashion_mnist/train.parquet

A folder of the user's own images names its kind (robustlab.data.DATASET_KINDS) and geometry;
the pipeline's test split is the folder's val/ (robustlab/data/image_folder.py):

python -m stages.prepare --dataset imagenette --kind image_folder --image-size 224 --resize 256
    --channels 3 --split test --size all --seed 0 --source-dir data/raw/imagenette2-320
    --out data/prepared/imagenette/test.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from robustlab.data import (
    DATASET_KINDS,
    DATASETS,
    ImageSet,
    load_dataset,
    stratified_subset,
    write_images,
)
from robustlab.data.fetch import DEFAULT_RAW_ROOT


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
    parser.add_argument(
        "--dataset", required=True, help=f"a registered dataset ({', '.join(DATASETS.names())}) "
        "or, with --kind, the name of the user's dataset"
    )  # fmt: skip
    parser.add_argument("--split", required=True, choices=["train", "test"])
    parser.add_argument("--size", required=True, type=_size, help="examples to keep, or 'all'")
    parser.add_argument("--seed", required=True, type=int, help="seed of the stratified subset")
    parser.add_argument("--source-dir", type=Path, help="folder holding the source files")
    parser.add_argument("--download", action="store_true", help="fetch missing source files")
    parser.add_argument("--kind", choices=DATASET_KINDS.names(), help="a dataset of own images")
    parser.add_argument("--image-size", type=int, help="--kind: side of the square images, px")
    parser.add_argument("--resize", type=int, help="--kind: shorter side before the centre crop")
    parser.add_argument("--channels", type=int, default=3, help="--kind: 3 (RGB) or 1 (grey)")
    parser.add_argument("--out", required=True, type=Path, help="the Parquet table to write")
    args = parser.parse_args(argv)
    if args.kind is None and args.dataset not in DATASETS:
        parser.error(
            f"argument --dataset: invalid choice: {args.dataset!r} (choose from "
            f"{', '.join(DATASETS.names())}); for a folder of own images add --kind "
            f"({', '.join(DATASET_KINDS.names())})"
        )
    if args.kind is not None and args.image_size is None:
        parser.error(f"--kind {args.kind} needs --image-size")
    if args.kind is not None and args.download:
        parser.error(f"--kind {args.kind}: a folder of own images cannot be downloaded")
    return args


def _load(args: argparse.Namespace) -> tuple[ImageSet, int]:
    """The subset to write and the number of images in the whole split."""
    if args.kind is None:
        full = load_dataset(args.dataset, args.split, args.source_dir, args.download)
        keep = stratified_subset(full.labels, args.size, args.seed)
        subset = ImageSet(
            images=full.images[keep],
            labels=full.labels[keep],
            index=full.index[keep],
            class_names=full.class_names,
            source_checksum=full.source_checksum,
        )
        return subset, len(full)
    root = args.source_dir if args.source_dir is not None else DEFAULT_RAW_ROOT / args.dataset
    folder = DATASET_KINDS.get(args.kind)(root, args.split)
    # only the chosen images are decoded; the checksum still covers the whole split
    keep = stratified_subset(folder.labels, args.size, args.seed)
    subset = folder.load(
        keep,
        image_size=args.image_size,
        resize=args.resize,
        channels=args.channels,
        progress=True,
    )
    return subset, len(folder)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        subset, total = _load(args)
    except (OSError, ValueError) as err:
        raise SystemExit(f"stages.prepare: {err}") from None
    write_images(subset, args.out)
    h, w, c = subset.shape
    per_class = np.bincount(subset.labels, minlength=len(subset.class_names))
    print(
        f"stages.prepare: {args.dataset}/{args.split}: {len(subset)} of {total} images "
        f"({h}x{w}x{c}, {per_class.min()}-{per_class.max()} per class, seed {args.seed}) "
        f"-> {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
