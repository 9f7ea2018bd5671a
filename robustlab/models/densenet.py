"""DenseNet-BC at CIFAR scale (Huang et al.): 3x3 stem, dense blocks, 1x1 + avg-pool transitions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bn_size x growth) - BN-ReLU-conv3x3 (growth); output is concatenated."""

    def __init__(self, in_channels: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 (compression) - 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2)


class DenseNet(nn.Module):
    """DenseNet-BC: ``blocks`` dense layers per block, growth ``growth``, compression 0.5."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        blocks: Sequence[int] = (6, 12, 24, 16),
        growth: int = 32,
        bn_size: int = 4,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        channels = 2 * growth
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(channels, growth, bn_size))
                channels += growth
            if i < len(blocks) - 1:
                out = max(1, int(channels * compression))
                layers.append(Transition(channels, out))
                channels = out
        self.features = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm(self.features(self.stem(x))))
        return self.fc(out.mean((2, 3)))


def densenet121(
    num_classes: int,
    in_channels: int,
    image_size: int,
    growth: int = 32,
    blocks: Sequence[int] = (6, 12, 24, 16),
    bn_size: int = 4,
) -> DenseNet:
    """DenseNet-121 (blocks 6/12/24/16, growth 32); smaller ``growth`` for CPU runs."""
    del image_size
    return DenseNet(num_classes, in_channels, blocks, growth, bn_size)
