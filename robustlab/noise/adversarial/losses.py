"""Losses the gradient attacks ascend: cross-entropy and the Carlini-Wagner margin.

Each loss gives per-example values; an attack ascends their sum divided by the size of the
batch it was called on (``count``). For the whole batch that is the batch mean, with exactly
the gradients of ``F.cross_entropy(logits, y)`` (the textbook loop's); for a subset (skipped or
already fooled examples left out) each example keeps the gradient it would get in the whole
batch, so its trajectory does not depend on which other examples are still attacked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

#: ``loss(logits, y) -> per-example values`` (shape N)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy."""
    return F.cross_entropy(logits, y, reduction="none")


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin ``max_{j != y} z_j - z_y`` (positive iff misclassified)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(1) - true


LOSSES: dict[str, Loss] = {"ce": cross_entropy, "cw": cw_margin}


def batch_objective(loss: Loss, logits: torch.Tensor, y: torch.Tensor, count: int) -> torch.Tensor:
    """The scalar to ascend: per-example losses summed and divided by ``count``."""
    return loss(logits, y).sum() / count
