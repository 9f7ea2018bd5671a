"""Losses the gradient attacks ascend: cross-entropy and the Carlini-Wagner margin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin ``max_{j != y} z_j - z_y`` (positive iff misclassified)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(1) - true


@dataclass(frozen=True)
class Loss:
    """A batch loss to ascend (``batch``: logits, labels -> scalar) and its per-example
    values (``per_example``), used to rank restarts."""

    batch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    per_example: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


LOSSES = {
    # the batch mean, exactly as the textbook loop computes it (bit-identical gradients)
    "ce": Loss(
        lambda z, y: F.cross_entropy(z, y),
        lambda z, y: F.cross_entropy(z, y, reduction="none"),
    ),
    "cw": Loss(lambda z, y: cw_margin(z, y).mean(), cw_margin),
}
