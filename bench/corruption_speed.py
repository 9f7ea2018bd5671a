"""Speed of the corruption engine against imagecorruptions-imaug on the same images.

python bench/corruption_speed.py [--size 32 224] [--images N] [--severities 1 2 3 4 5]
                                 [--repeats 3] [--corruptions ...]

Times the 19 corruptions of ``robustlab.noise.natural`` (batched) and of the maintained
ImageNet-C fork (module ``imagecorruptions``, one image at a time, a test-only dependency) on the
same natural-looking images: random crops of scikit-image's sample photographs, resized to each
``--size``. ``--images`` defaults to 200 at sizes below 100 px and 24 above. One-time costs (our
frost texture bank, the fork's numba compilation) are paid in a warm-up before timing. Ours and
the fork's runs are interleaved (ours, fork, ours, fork, ...) so that load on the machine hits
both alike; each cell is the median of ``--repeats`` runs, in milliseconds for all severities,
and the speed-up is fork / ours. Runs on one thread (torch, OpenCV; set OMP_NUM_THREADS=1 for
the BLAS under NumPy).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from PIL import Image

from robustlab.noise.natural import COMMON, GROUPS, apply_corruption

ALL = COMMON + GROUPS["extra"]


def sample_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n size x size RGB crops of scikit-image's sample photographs (random place and scale)."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(size, max(min(h, w) // 2, size + 1)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))
    return out


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(
    images: np.ndarray, names: list[str], severities: list[int], repeats: int
) -> list[tuple[str, float, float]]:
    """(name, ours ms, fork ms) per corruption, medians of interleaved runs."""
    import imagecorruptions

    for name in names:  # one-time costs out of the timed runs
        apply_corruption(name, images[:1], severities[0], 0)
        imagecorruptions.corrupt(images[0], severities[0], name)

    def ours(name: str) -> None:
        for s in severities:
            apply_corruption(name, images, s, s)

    def fork(name: str) -> None:
        np.random.seed(0)
        for s in severities:
            for image in images:
                imagecorruptions.corrupt(image, s, name)

    rows = []
    for name in names:
        mine, ref = [], []
        for _ in range(repeats):
            mine.append(_seconds(lambda name=name: ours(name)))
            ref.append(_seconds(lambda name=name: fork(name)))
        rows.append((name, 1000 * float(np.median(mine)), 1000 * float(np.median(ref))))
    return rows


def report(rows: list[tuple[str, float, float]], header: str) -> None:
    """Print the per-corruption table, the overall ratio and the smallest speed-up."""
    print(header)
    print(f"{'corruption':<18} {'ours ms':>9} {'fork ms':>9} {'speed-up':>9}")
    for name, mine, ref in rows:
        print(f"{name:<18} {mine:9.1f} {ref:9.1f} {ref / mine:8.1f}x")
    total_ours, total_fork = sum(r[1] for r in rows), sum(r[2] for r in rows)
    slowest = min(rows, key=lambda r: r[2] / r[1])
    print(f"{'total':<18} {total_ours:9.1f} {total_fork:9.1f} {total_fork / total_ours:8.1f}x")
    print(f"smallest speed-up: {slowest[0]} {slowest[2] / slowest[1]:.1f}x\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corruptions", nargs="+", default=list(ALL))
    args = parser.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    warnings.filterwarnings("ignore")

    for size in args.size:
        n = args.images or (200 if size < 100 else 24)
        rows = compare(sample_images(n, size), args.corruptions, args.severities, args.repeats)
        report(
            rows,
            f"{n} images of {size}x{size}x3, severities {args.severities}, median of "
            f"{args.repeats} interleaved runs, one thread",
        )


if __name__ == "__main__":
    main()
