"""Counting a model's forward and backward passes, in examples, with hooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PassCounts:
    """Examples that went through the model forward and backward, and the calls behind them.

    A backward pass is counted when a gradient reaches the model's output (``backward()`` or
    ``torch.autograd.grad``), for every example of that output, even if the loss used only
    some of them: that is what the computation costs.
    """

    forward: int = 0
    backward: int = 0
    forward_calls: int = 0
    backward_calls: int = 0


def _batch_size(args: tuple, output) -> int:
    for value in (*args, output):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return 0


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCounts]:
    """Count the passes through ``model`` inside the ``with`` block.

    >>> with count_passes(model) as passes:
    ...     x_adv = attack(model, x, y, eps)
    >>> passes.forward, passes.backward
    """
    counts = PassCounts()

    def on_forward(module: nn.Module, args: tuple, output) -> None:
        n = _batch_size(args, output)
        counts.forward += n
        counts.forward_calls += 1
        if isinstance(output, torch.Tensor) and output.requires_grad:

            def on_backward(grad: torch.Tensor) -> None:
                counts.backward += n
                counts.backward_calls += 1

            output.register_hook(on_backward)

    handle = model.register_forward_hook(on_forward)
    try:
        yield counts
    finally:
        handle.remove()
