"""Exact sampling of per-grey-level output laws: value-wise noise straight to uint8.

A value-wise noise (Gaussian, shot, speckle, impulse) followed by ImageNet-C's
``uint8(clip(x, 0, 1) * 255)`` turns input grey level k into output level j with a probability
that depends on k alone. Given that law as a 256 x 256 table of CDFs, :func:`sample_levels`
draws every output by inversion with one 32-bit uniform integer (in two 16-bit halves): a
guide table (4096 buckets of the uniform per level) answers directly unless a CDF step falls
inside the drawn bucket, and a short loop over the thresholds settles those few. The result
has the law of the reference's float pipeline to 2^-32 in probability, without its float
temporaries. A law that is one offset law shifted by k (Gaussian noise: out = clip(k + d)) is
drawn from that offset law alone (:func:`sample_offsets`), with a finer guide.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from robustlab.noise.natural._base import uniform_bits

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
    high = uniform_bits(rng, images.shape, np.uint16).ravel()
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


class OffsetTables(NamedTuple):
    """Inversion tables of an offset law: out = clip(k + d, 0, 255) with d independent of k.

    ``thresholds[i]`` is the least 32-bit r with r / 2^32 >= P(d <= i - 256) for i in 0..511,
    so that d = #{i : r >= thresholds[i]} - 256 (-256 stands for any d <= -256, 256 for any
    d >= 256: both clip alike for every k). ``guide[h]`` is d for every r whose high 16 bits are
    h, or :data:`SPLIT` where a threshold falls inside that bucket.
    """

    thresholds: np.ndarray  # 512 int64
    guide: np.ndarray  # 2^16 int16


#: Guide entry of an offset bucket holding a step (its values need their low 16 bits).
SPLIT = 1000


def offset_tables(cdf: np.ndarray) -> OffsetTables:
    """:class:`OffsetTables` of ``cdf[i]`` = P(d <= i - 256), i = 0..511."""
    cdf = np.asarray(cdf, np.float64)
    if cdf.shape != (2 * LEVELS,):
        raise ValueError(f"offset_tables: cdf must have 512 entries, got {cdf.shape}")
    thresholds = np.ceil(np.maximum.accumulate(np.clip(cdf, 0.0, 1.0)) * 2.0**32).astype(np.int64)
    low = np.arange(1 << 16, dtype=np.int64) << 16
    first = np.searchsorted(thresholds, low, side="right")
    last = np.searchsorted(thresholds, low + 0xFFFF, side="right")
    guide = np.where(first == last, first - LEVELS, SPLIT).astype(np.int16)
    for table in (thresholds, guide):
        table.setflags(write=False)
    return OffsetTables(thresholds, guide)


def sample_offsets(
    images: np.ndarray, tables: OffsetTables, rng: np.random.Generator
) -> np.ndarray:
    """One draw of clip(k + d, 0, 255) for each uint8 value k of ``images`` (same shape, uint8).

    For the same 32-bit uniforms r this equals :func:`sample_levels` on the level tables of the
    same law (row k, column j: P(d <= j - k)). The high 16 bits of r pick the offset from
    :attr:`OffsetTables.guide`; the low 16 bits are drawn only for the values whose bucket holds
    a step (far fewer than with the per-level guide: one offset table has 2^16 buckets).
    """
    if images.size == 0:
        return images.copy()
    high = uniform_bits(rng, images.shape, np.uint16).ravel()
    flat = images.ravel()
    offset = np.empty(flat.shape, np.int16)
    for a in range(0, len(flat), CHUNK):
        b = min(a + CHUNK, len(flat))
        np.take(tables.guide, high[a:b].astype(np.intp), out=offset[a:b])
    split = np.flatnonzero(offset == SPLIT)
    if len(split):
        low = rng.integers(0, 1 << 16, size=len(split), dtype=np.uint16)
        r = high[split].astype(np.int64) << 16
        r |= low
        offset[split] = np.searchsorted(tables.thresholds, r, side="right") - LEVELS
    # saturating k + d (OpenCV's mixed-type add straight to uint8)
    out = cv2.add(flat.reshape(-1, 1), offset.reshape(-1, 1), dtype=cv2.CV_8U)
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
