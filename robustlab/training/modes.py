"""Train/eval modes of a model, switched per module and restored exactly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode, then restore each module's own mode.

    Attacks inside a training step run this way: batch-norm statistics are neither used nor
    updated by the attack's forward passes, and modules that the loop keeps in eval mode
    (CLAT's frozen batch norms) stay so afterwards.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def set_train_mode(model: nn.Module, freeze_bn_stats: bool = False) -> None:
    """Train mode; with ``freeze_bn_stats`` batch norms stay in eval mode (running statistics
    are used and never updated)."""
    model.train()
    if freeze_bn_stats:
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
