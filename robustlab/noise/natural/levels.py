"""Exact sampling of per-grey-level output laws: value-wise noise straight to uint8.

A value-wise noise (Gaussian, shot, speckle, impulse) followed by ImageNet-C's
``uint8(clip(x, 0, 1) * 255)`` turns input grey level k into output level j with a probability
that depends on k alone. Given that law as a 256 x 256 table of CDFs, :func:`sample_levels`
draws every output by inversion with one 32-bit uniform integer (in two 16-bit halves): a
guide table (4096 buckets of the uniform per level) answers directly unless a CDF step falls
inside the drawn bucket, and a short loop over the thresholds settles those few. The result
has the law of the reference's float pipeline to 2^-32 in probability, without its float
temporaries.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: log2 of the guide-table buckets per grey level.
GUIDE_BITS = 12

LEVELS = 256


class LevelTables(NamedTuple):
    """Inversion tables of 256 output laws (read-only).

    ``thresholds[k, j]`` is the least 32-bit integer r with r / 2^32 >= P(out <= j | k) (2^32
    where the CDF is 1), so that the draw for r is #{j : r >= thresholds[k, j]}. ``guide[k, b]``
    holds that count at the bucket's lowest r, plus 256 if the count changes inside bucket b.
    """

    thresholds: np.ndarray  # 256 x 256 int64
    guide: np.ndarray  # 256 x 2^GUIDE_BITS uint16


def level_tables(cdf: np.ndarray) -> LevelTables:
    """:class:`LevelTables` of a 256 x 256 table ``cdf[k, j]`` = P(out <= j | input k)."""
    cdf = np.asarray(cdf, np.float64)
    if cdf.shape != (LEVELS, LEVELS):
        raise ValueError(f"level_tables: cdf must be 256 x 256, got {cdf.shape}")
    cdf = np.maximum.accumulate(np.clip(cdf, 0.0, 1.0), axis=1)
    cdf[:, -1] = 1.0
    thresholds = np.ceil(cdf * 2.0**32).astype(np.int64)
    shift = 32 - GUIDE_BITS
    low = np.arange(1 << GUIDE_BITS, dtype=np.int64) << shift  # lowest r of each bucket
    high = low + (1 << shift) - 1  # highest r of each bucket
    first = np.stack([np.searchsorted(row, low, side="right") for row in thresholds])
    last = np.stack([np.searchsorted(row, high, side="right") for row in thresholds])
    guide = (first + LEVELS * (last != first)).astype(np.uint16)
    for table in (thresholds, guide):
        table.setflags(write=False)
    return LevelTables(thresholds, guide)


#: Values per step of :func:`sample_levels`: a step's index and guide arrays stay in cache.
CHUNK = 1 << 17


def sample_levels(images: np.ndarray, tables: LevelTables, rng: np.random.Generator) -> np.ndarray:
    """One draw of the output law of each uint8 value of ``images`` (same shape, uint8).

    The 32-bit uniform r of a value is drawn in two 16-bit halves: the high half for every value
    (its top :data:`GUIDE_BITS` bits pick the guide bucket, which settles almost all draws), the
    low half only for the few values whose bucket holds a step; halves drawn independently make
    r exactly uniform. The guide lookups go chunk by chunk (:data:`CHUNK` values) with a
    pointer-sized index, so that NumPy's gather neither converts the index nor leaves the cache.
    """
    high = rng.integers(0, 1 << 16, size=images.shape, dtype=np.uint16).ravel()
    flat = images.ravel()
    table = tables.guide.ravel()
    guide = np.empty(flat.shape, np.uint16)
    index = np.empty(min(CHUNK, len(flat)), np.intp)
    for a in range(0, len(flat), CHUNK):
        b = min(a + CHUNK, len(flat))
        step = index[: b - a]
        np.left_shift(flat[a:b], GUIDE_BITS, out=step, dtype=np.intp)
        step |= high[a:b] >> (16 - GUIDE_BITS)
        np.take(table, step, out=guide[a:b])
    out = guide.astype(np.uint8)  # the low byte: the count at the bucket's start
    split = np.flatnonzero(guide >= LEVELS)
    if len(split):
        low = rng.integers(0, 1 << 16, size=len(split), dtype=np.uint16)
        r = high[split].astype(np.int64) << 16
        r |= low
        out[split] = _refine(flat[split], r, out[split], tables.thresholds)
    return out.reshape(images.shape)


def _refine(
    levels: np.ndarray, r: np.ndarray, count: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Counts of thresholds <= r, from the bucket's start count upwards."""
    count = count.astype(np.intp)
    row = levels.astype(np.intp) * LEVELS
    flat = thresholds.ravel()
    r = r.astype(np.int64)
    todo = np.flatnonzero(flat[row + count] <= r)
    while len(todo):
        count[todo] += 1
        todo = todo[flat[row[todo] + count[todo]] <= r[todo]]
    return count.astype(np.uint8)
