"""ShuffleNetV2 (Ma et al.) at CIFAR scale: 3x3 stride-1 stem, no max-pool, three stages."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.models.mobilenet import conv_bn_act

# Output channels of the three stages and of the last 1x1 conv, per width multiplier.
WIDTHS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (reshape, never view: channels_last safe)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    """Stride 1: split channels, transform one half. Stride 2: transform both copies of x."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = out_ch // 2
        branch_in = in_ch if stride > 1 else in_ch // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                conv_bn_act(in_ch, in_ch, 3, stride, in_ch, None),
                conv_bn_act(in_ch, half, 1, 1, 1, "relu"),
            )
        self.branch2 = nn.Sequential(
            conv_bn_act(branch_in, half, 1, 1, 1, "relu"),
            conv_bn_act(half, half, 3, stride, half, None),
            conv_bn_act(half, half, 1, 1, 1, "relu"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, work = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(work)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """Stem conv3x3 (24), stages of 4/8/4 units (first strided), 1x1 conv, pool, linear."""

    def __init__(self, num_classes: int, in_channels: int, width_mult: float = 1.0) -> None:
        super().__init__()
        if width_mult not in WIDTHS:
            raise ValueError(f"ShuffleNetV2 width_mult must be one of {sorted(WIDTHS)}")
        *stage_out, last = WIDTHS[width_mult]
        layers: list[nn.Module] = [conv_bn_act(in_channels, 24, 3, 1, 1, "relu")]
        ch = 24
        for repeats, out in zip((4, 8, 4), stage_out, strict=True):
            for i in range(repeats):
                layers.append(ShuffleUnit(ch, out, 2 if i == 0 else 1))
                ch = out
        layers.append(conv_bn_act(ch, last, 1, 1, 1, "relu"))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def shufflenet_v2(
    num_classes: int, in_channels: int, image_size: int, width_mult: float = 1.0
) -> ShuffleNetV2:
    """ShuffleNetV2 x``width_mult`` (0.5, 1.0, 1.5 or 2.0)."""
    del image_size
    return ShuffleNetV2(num_classes, in_channels, width_mult)
