"""Pre-activation ResNets and Wide ResNets at CIFAR scale (3x3 stem, no max-pool)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = F.relu(self.bn2(out))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + shortcut


class PreActResNet(nn.Module):
    """Stem conv3x3, stages of pre-activation blocks, BN-ReLU, global pool, linear.

    ``depths`` blocks per stage, ``widths`` channels per stage; the first stage keeps the
    resolution, each later stage halves it in its first block.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        depths: Sequence[int],
        widths: Sequence[int],
        stem_width: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f"depths {list(depths)} and widths {list(widths)} differ in length")
        self.stem = nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_planes = stem_width
        for stage, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PreActBlock(in_planes, width, stride, dropout))
                in_planes = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def preact_resnet18(
    num_classes: int, in_channels: int, image_size: int, base_width: int = 64
) -> PreActResNet:
    """PreAct ResNet-18: four stages of two blocks, widths base_width x (1, 2, 4, 8)."""
    del image_size  # fully convolutional with global pooling
    widths = [base_width * m for m in (1, 2, 4, 8)]
    return PreActResNet(num_classes, in_channels, [2, 2, 2, 2], widths, stem_width=base_width)


def wide_resnet(
    num_classes: int,
    in_channels: int,
    image_size: int,
    depth: int = 16,
    widen_factor: int = 4,
    dropout: float = 0.0,
    depths: Sequence[int] | None = None,
    widen_factors: Sequence[int] | None = None,
) -> PreActResNet:
    """WRN-depth-k (Zagoruyko & Komodakis): (depth - 4) / 6 blocks per stage, widths 16k/32k/64k.

    ``depths`` (blocks per stage) and ``widen_factors`` (k per stage) override the uniform
    values, e.g. WRN-34-R = depth 34 with factors (20, 20, 8) and the RobustScaling WRN-A1 =
    depths (14, 14, 7) with factors (5, 7, 3).
    """
    del image_size
    if depths is None:
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n + 4 (e.g. 16, 28, 34), got {depth}")
        n = (depth - 4) // 6
        depths = [n, n, n]
    factors = widen_factors if widen_factors is not None else [widen_factor] * 3
    if len(depths) != 3 or len(factors) != 3:
        raise ValueError(f"a WRN has three stages: got depths {depths}, factors {factors}")
    widths = [base * k for base, k in zip((16, 32, 64), factors, strict=True)]
    return PreActResNet(
        num_classes, in_channels, list(depths), widths, stem_width=16, dropout=dropout
    )
