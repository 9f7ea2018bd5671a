"""Class-stratified subsets of a split."""

from __future__ import annotations

import numpy as np


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Sorted int64 indices of a class-balanced subset of ``size`` examples.

    Each of the k classes present gets ``size // k`` examples; the ``size % k`` left over go one
    each to the first classes of a seeded permutation. Examples are drawn without replacement with
    ``numpy.random.default_rng(seed)``, so equal seeds give equal subsets. ``size`` None or at least
    ``len(labels)`` selects everything.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    n = len(labels)
    if size is None or size >= n:
        return np.arange(n, dtype=np.int64)
    classes = np.unique(labels)
    k = len(classes)
    if size < k:
        raise ValueError(f"subset size {size} is smaller than the number of classes ({k})")
    rng = np.random.default_rng(seed)
    counts = np.full(k, size // k, dtype=np.int64)
    counts[rng.permutation(k)[: size % k]] += 1
    chosen = []
    for cls, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(labels == cls)
        if len(members) < count:
            raise ValueError(
                f"class {cls} has {len(members)} examples, too few for {count} in a stratified "
                f"subset of {size}; choose a size of at most {k * _min_count(labels, classes)}"
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _min_count(labels: np.ndarray, classes: np.ndarray) -> int:
    return int(min(np.count_nonzero(labels == c) for c in classes))
