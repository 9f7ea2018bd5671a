"""Perturbation sequences (ImageNet-P style) of a prepared image table.

python -m stages.perturb --input data/prepared/D/test.parquet --perturbation NAME --length L
    --seed S --out data/noisy/D/perturbation/NAME.parquet [--max-images N --subset first]

Output: the image table of the input (same metadata) with one row per (image, frame), ordered by
source index then frame, plus ``perturbation`` string, ``frame`` int16 (0..L-1) and
``magnitude`` float64 (the frame's parameter; NaN for the clean frame 0 of noise kinds).
``--max-images N`` keeps the first N images by index (``--subset first``) or a class-stratified
subset drawn with ``--seed`` (``--subset stratified``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise.stability import (
    perturbation_names,
    perturbation_schedule,
    perturbation_sequence,
)
from stages.common import add_subset_arguments, select_images, set_threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stages.perturb", description=__doc__)
    parser.add_argument("--input", required=True, type=Path, help="prepared image table (Parquet)")
    parser.add_argument("--perturbation", required=True, help="perturbation registry name")
    parser.add_argument("--length", required=True, type=int, help="frames per sequence (>= 2)")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    add_subset_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prog = "stages.perturb"
    set_threads(args.threads)
    if args.perturbation not in perturbation_names():
        known = ", ".join(perturbation_names())
        raise SystemExit(f"{prog}: unknown --perturbation {args.perturbation!r}; known: {known}")
    if args.length < 2:
        raise SystemExit(
            f"{prog}: --length must be >= 2 (frame pairs are compared), got {args.length}"
        )
    if args.seed < 0:
        raise SystemExit(f"{prog}: --seed must be >= 0, got {args.seed}")

    data = select_images(read_images(args.input), args.max_images, args.subset, args.seed, prog)
    n, h, w, c = data.images.shape
    try:
        magnitudes = perturbation_schedule(args.perturbation, args.length, h, w)
        frames = perturbation_sequence(args.perturbation, data.images, args.length, args.seed)
    except ValueError as err:
        raise SystemExit(f"{prog}: {args.input}: {err}") from None

    length = args.length
    result = ImageSet(
        images=frames.reshape(n * length, h, w, c),
        labels=np.repeat(data.labels, length),
        index=np.repeat(data.index, length),
        class_names=data.class_names,
        source_checksum=data.source_checksum,
        extra={
            "perturbation": np.full(n * length, args.perturbation),
            "frame": np.tile(np.arange(length, dtype=np.int16), n),
            "magnitude": np.tile(magnitudes, n),
        },
    )
    write_images(result, args.out)


if __name__ == "__main__":
    main()
