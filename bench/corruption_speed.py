"""Speed of the corruption engine against imagecorruptions-imaug on the same images.

python bench/corruption_speed.py [--images 200] [--size 32] [--repeats 3] [--corruptions ...]

Times all 19 corruptions x 5 severities of ``robustlab.noise.natural`` (batched) and of the
maintained ImageNet-C fork (module ``imagecorruptions``, one image at a time, a test-only
dependency) on the same natural-looking images: random crops of scikit-image's sample
photographs, resized to ``--size``. One-time costs (our frost texture bank, the fork's numba
compilation) are paid in a warm-up before timing and printed separately. Each cell is the median
of ``--repeats`` runs, in milliseconds for all five severities; the speed-up is fork / ours.
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
        side = int(rng.integers(size, min(h, w) // 2))
        top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))
    return out


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corruptions", nargs="+", default=list(ALL))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import imagecorruptions

    images = sample_images(args.images, args.size)
    severities = range(1, 6)

    warm = {}
    for name in args.corruptions:  # one-time costs out of the timed runs
        start = time.perf_counter()
        apply_corruption(name, images[:1], 1, 0)
        mid = time.perf_counter()
        imagecorruptions.corrupt(images[0], 1, name)
        warm[name] = (1000 * (mid - start), 1000 * (time.perf_counter() - mid))

    def ours(name: str) -> None:
        for s in severities:
            apply_corruption(name, images, s, s)

    def fork(name: str) -> None:
        np.random.seed(0)
        for s in severities:
            for image in images:
                imagecorruptions.corrupt(image, s, name)

    rows = []
    for name in args.corruptions:
        mine = _median_ms(lambda name=name: ours(name), args.repeats)
        ref = _median_ms(lambda name=name: fork(name), args.repeats)
        rows.append((name, mine, ref))

    print(
        f"{args.images} images of {args.size}x{args.size}x3, severities 1-5, median of "
        f"{args.repeats} runs, torch threads 1"
    )
    print(f"{'corruption':<18} {'ours ms':>9} {'fork ms':>9} {'speed-up':>9}  warm-up ours/fork ms")
    for name, mine, ref in rows:
        w_ours, w_fork = warm[name]
        print(f"{name:<18} {mine:9.1f} {ref:9.1f} {ref / mine:8.1f}x  {w_ours:8.1f} / {w_fork:.1f}")
    total_ours, total_fork = sum(r[1] for r in rows), sum(r[2] for r in rows)
    slowest = min(rows, key=lambda r: r[2] / r[1])
    print(f"{'total':<18} {total_ours:9.1f} {total_fork:9.1f} {total_fork / total_ours:8.1f}x")
    print(f"smallest speed-up: {slowest[0]} {slowest[2] / slowest[1]:.1f}x")


if __name__ == "__main__":
    main()
