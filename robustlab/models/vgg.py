"""VGG-16/19 with batch normalisation at CIFAR scale (global pooling and one linear layer)."""

from __future__ import annotations

import torch
from torch import nn

CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
    + [512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
    + [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """conv3x3-BN-ReLU stacks and 2x2 max-pools (ceil mode: 28 px inputs work too)."""

    def __init__(
        self, num_classes: int, in_channels: int, config: list[int | str], width_mult: float = 1.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            out = max(1, round(int(item) * width_mult))
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def vgg_bn(
    num_classes: int,
    in_channels: int,
    image_size: int,
    variant: str = "vgg16",
    width_mult: float = 1.0,
) -> VGG:
    """VGG with BN; ``variant`` in vgg11/vgg16/vgg19, channels x ``width_mult``."""
    del image_size
    if variant not in CONFIGS:
        raise ValueError(f"unknown VGG variant {variant!r}; known: {', '.join(CONFIGS)}")
    return VGG(num_classes, in_channels, CONFIGS[variant], width_mult)
