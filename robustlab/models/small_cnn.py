"""A small convolutional network: two conv blocks and two linear layers (fast CPU baseline)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(w)-relu-pool, conv(2w)-relu-pool, linear(hidden)-relu, linear(num_classes)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        width: int = 32,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
