"""Building blocks shared by the architectures."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel standardisation inside the model: inputs and attack budgets stay in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {list(std)}")
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``Normalize`` followed by a network; ``family`` is cnn, transformer or mlp."""

    def __init__(self, net: nn.Module, normalize: Normalize, family: str) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net
        self.family = family

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))
