"""Exponential moving average (EMA) of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A copy of the model whose floating-point state follows ``ema += (1 - decay) * (w - ema)``
    after every optimizer step (parameters and batch-norm statistics alike; integer buffers such
    as ``num_batches_tracked`` are copied). ``torch.lerp`` keeps an entry that equals the
    model's bit-identical, so frozen weights stay frozen in the average too."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current state."""
        averaged = self.model.state_dict()
        for name, value in model.state_dict().items():
            target = averaged[name]
            if target.is_floating_point():
                target.lerp_(value, 1.0 - self.decay)
            else:
                target.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
