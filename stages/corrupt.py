"""Corrupt a prepared image table at several severities; write one table with all of them.

python -m stages.corrupt --input data/prepared/D/test.parquet --corruption NAME
    --severities 1 2 3 4 5 --seed 0 --out data/noisy/D/NAME.parquet

Rows are ordered by severity, then by source index; each (corruption, severity) uses its own
generator, seeded by ``corruption_seed(seed, name, severity)`` (CRC-32, stable across runs).
The parameter table follows the image size (20-28 px, 29-64 px, >= 224 px; docs/corruptions.md);
other sizes stop with an error naming the input file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise.natural import corrupt_chunks, corruption_names, corruption_seed
from stages.common import add_subset_arguments, select_images, set_threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stages.corrupt", description=__doc__)
    parser.add_argument("--input", required=True, type=Path, help="prepared image table (Parquet)")
    parser.add_argument("--corruption", required=True, help="corruption registry name")
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--no-progress", action="store_true")
    add_subset_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.corruption not in corruption_names():
        known = ", ".join(corruption_names())
        raise SystemExit(
            f"stages.corrupt: unknown --corruption {args.corruption!r}; known: {known}"
        )
    if len(set(args.severities)) != len(args.severities):
        raise SystemExit(f"stages.corrupt: --severities has duplicates: {args.severities}")

    clean = select_images(
        read_images(args.input), args.max_images, args.subset, args.seed, "stages.corrupt"
    )  # sorted by index, cut to --max-images
    images, labels, index = clean.images, clean.labels, clean.index

    runs = []  # validate every severity and the image size before any work
    for severity in args.severities:
        seed = corruption_seed(args.seed, args.corruption, severity)
        try:
            runs.append(corrupt_chunks(args.corruption, images, severity, seed))
        except ValueError as err:
            raise SystemExit(f"stages.corrupt: {args.input}: {err}") from None

    outputs = []
    total = len(images) * len(args.severities)
    with tqdm(total=total, desc=args.corruption, unit="img", disable=args.no_progress) as bar:
        for chunks in runs:
            done = []
            for chunk in chunks:
                done.append(chunk)
                bar.update(len(chunk))
            outputs.append(np.concatenate(done) if done else images[:0].copy())

    n, k = len(images), len(args.severities)
    result = ImageSet(
        images=np.concatenate(outputs),
        labels=np.tile(labels, k),
        index=np.tile(index, k),
        class_names=clean.class_names,
        source_checksum=clean.source_checksum,
        extra={
            "corruption": np.full(n * k, args.corruption),
            "severity": np.repeat(np.asarray(args.severities, dtype=np.int16), n),
        },
    )
    write_images(result, args.out)


if __name__ == "__main__":
    main()
