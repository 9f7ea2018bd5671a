"""The hooks :func:`robustlab.training.fit` calls around its epochs.

The base class is plain training (every hook does nothing), so ``fit`` without a strategy
runs exactly as it always has. A fine-tuning method (CLAT) subclasses it to renumber epochs,
change which parameters train (the optimizer is rebuilt when :meth:`begin_epoch` says so),
swap the technique, add history columns and keep its own state in the checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustlab.training.techniques import Technique


class TrainingStrategy:
    """Plain training: the hooks of :func:`robustlab.training.fit`, all no-ops."""

    #: added to the loop's epoch for history rows, generators, validation and checkpoints
    epoch_offset: int = 0
    #: batch norms stay in eval mode during training steps
    freeze_bn_stats: bool = False
    #: progress-bar label
    desc: str = "epoch"

    def identity(self) -> dict[str, Any] | None:
        """Extra run identity (checkpoints of other identities are not resumed); None: none."""
        return None

    def identity_contents(self) -> dict[str, torch.Tensor]:
        """Extra tensors of the run identity (e.g. the initial weights)."""
        return {}

    def restore(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Called with a resumed checkpoint's extra state, before the optimizer is built."""

    def begin_epoch(self, model: nn.Module, epoch: int) -> bool:
        """Called before epoch ``epoch`` (1-based, without offset); True: rebuild the
        optimizer (the set of trainable parameters changed)."""
        return False

    def technique(self, default: Technique) -> Technique:
        """The technique of the coming epoch."""
        return default

    def epoch_columns(self, model: nn.Module) -> dict[str, Any]:
        """Extra history columns of the epoch just trained."""
        return {}

    def state(self) -> dict[str, Any]:
        """Extra state saved with every checkpoint."""
        return {}
