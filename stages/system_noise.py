"""System-noise variants (ImageNet-S style) of a prepared image table.

python -m stages.system_noise --input data/prepared/D/test.parquet --stored-size 64
    --format jpeg --quality 75 --grid sweep --out data/noisy/D/system.parquet

Every image is upsampled to ``--stored-size`` (square), encoded as JPEG or PNG, decoded by PIL
and OpenCV and resized back to the input size by each resize method of the grid (see
robustlab/noise/system.py). Output: the image table of the input with one row per (variant,
image), ordered by variant (grid order) then source index, plus ``variant``, ``decoder`` and
``resize`` strings. ``--quality`` applies to JPEG only. ``--max-images`` / ``--subset`` /
``--seed`` bound the number of images as in stages.perturb (no randomness otherwise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise.system import FORMATS, GRIDS, system_noise
from stages.common import add_subset_arguments, select_images


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stages.system_noise", description=__doc__)
    parser.add_argument("--input", required=True, type=Path, help="prepared image table (Parquet)")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--stored-size", type=int, help="side of the stored image")
    size.add_argument(
        "--stored-scale", type=float, help="side of the stored image as a multiple of the input's"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="storage encoding")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality 1-100")
    parser.add_argument("--grid", choices=GRIDS, default="sweep")
    parser.add_argument("--seed", type=int, default=0, help="seed of --subset stratified")
    parser.add_argument("--out", required=True, type=Path)
    add_subset_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prog = "stages.system_noise"
    if args.stored_size is not None and args.stored_size < 1:
        raise SystemExit(f"{prog}: --stored-size must be >= 1, got {args.stored_size}")
    if args.stored_scale is not None and args.stored_scale < 1:
        raise SystemExit(f"{prog}: --stored-scale must be >= 1, got {args.stored_scale}")
    if args.format == "jpeg" and not 1 <= args.quality <= 100:
        raise SystemExit(f"{prog}: --quality must be in 1-100, got {args.quality}")

    data = select_images(read_images(args.input), args.max_images, args.subset, args.seed, prog)
    if args.stored_size is None:
        args.stored_size = int(round(args.stored_scale * max(data.images.shape[1:3])))
    try:
        variants, images = system_noise(
            data.images, args.stored_size, args.format, args.quality, args.grid
        )
    except ValueError as err:
        raise SystemExit(f"{prog}: {args.input}: {err}") from None

    k, n = images.shape[:2]
    result = ImageSet(
        images=images.reshape(k * n, *images.shape[2:]),
        labels=np.tile(data.labels, k),
        index=np.tile(data.index, k),
        class_names=data.class_names,
        source_checksum=data.source_checksum,
        extra={
            "variant": np.repeat([v.name for v in variants], n),
            "decoder": np.repeat([v.decoder for v in variants], n),
            "resize": np.repeat([v.resize for v in variants], n),
        },
    )
    write_images(result, args.out)


if __name__ == "__main__":
    main()
