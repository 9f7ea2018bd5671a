"""MobileNetV2 (Sandler et al.) and MobileNetV3 small/large (Howard et al.) at CIFAR scale.

CIFAR adaptation (as in the common CIFAR ports): the stem and the first strided block use
stride 1, so a 32 px input ends at 4 x 4 instead of 1 x 1. ``width_mult`` scales every width
(rounded to multiples of 8, the MobileNet rule).
"""

from __future__ import annotations

import torch
from torch import nn

from robustlab.models.layers import SqueezeExcite, make_activation, make_divisible


def conv_bn_act(
    in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, act: str | None
) -> nn.Sequential:
    """conv (no bias) - BN - activation (none when ``act`` is None)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act is not None:
        layers.append(make_activation(act))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expansion - depthwise kxk - optional SE - linear 1x1 projection (+ identity)."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        act: str,
        se_channels: int = 0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if mid_ch != in_ch:
            layers.append(conv_bn_act(in_ch, mid_ch, 1, 1, 1, act))
        layers.append(conv_bn_act(mid_ch, mid_ch, kernel, stride, mid_ch, act))
        if se_channels:
            layers.append(SqueezeExcite(mid_ch, se_channels, "relu", "hardsigmoid", bias=True))
        layers.append(conv_bn_act(mid_ch, out_ch, 1, 1, 1, None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


# MobileNetV2: expansion t, channels c, repeats n, stride s (ImageNet strides).
V2_CONFIG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
V2_CONFIG += [(6, 160, 3, 2), (6, 320, 1, 1)]

# MobileNetV3: kernel, expanded channels, output channels, SE, activation, stride.
V3_LARGE = [
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
]
V3_SMALL = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
]


class MobileNetV2(nn.Module):
    """MobileNetV2: 3x3 stem (32), inverted residual stages, 1x1 to 1280, pool, linear."""

    def __init__(self, num_classes: int, in_channels: int, width_mult: float = 1.0) -> None:
        super().__init__()
        ch = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn_act(in_channels, ch, 3, 1, 1, "relu6")]
        first_stride = True
        for t, c, n, s in V2_CONFIG:
            out = make_divisible(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                if stride == 2 and first_stride:
                    stride, first_stride = 1, False
                layers.append(InvertedResidual(ch, ch * t, out, 3, stride, "relu6"))
                ch = out
        last = make_divisible(1280 * max(1.0, width_mult))
        layers.append(conv_bn_act(ch, last, 1, 1, 1, "relu6"))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x).mean((2, 3))))


class MobileNetV3(nn.Module):
    """MobileNetV3: hard-swish stem (16), bneck blocks with SE, 1x1 conv, pool, 2-layer head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        config: list[tuple[int, int, int, bool, str, int]],
        last_channel: int,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        ch = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [conv_bn_act(in_channels, ch, 3, 1, 1, "hardswish")]
        first_stride = True
        for k, exp, c, se, act, s in config:
            mid, out = make_divisible(exp * width_mult), make_divisible(c * width_mult)
            stride = s
            if stride == 2 and first_stride:
                stride, first_stride = 1, False
            se_ch = make_divisible(mid / 4) if se else 0
            layers.append(InvertedResidual(ch, mid, out, k, stride, act, se_ch))
            ch = out
        layers.append(conv_bn_act(ch, 6 * ch, 1, 1, 1, "hardswish"))
        self.features = nn.Sequential(*layers)
        hidden = make_divisible(last_channel * width_mult)
        self.head = nn.Sequential(
            nn.Linear(6 * ch, hidden),
            nn.Hardswish(),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def mobilenet_v2(
    num_classes: int, in_channels: int, image_size: int, width_mult: float = 1.0
) -> MobileNetV2:
    """MobileNetV2 at CIFAR scale."""
    del image_size
    return MobileNetV2(num_classes, in_channels, width_mult)


def mobilenet_v3(
    num_classes: int,
    in_channels: int,
    image_size: int,
    size: str = "large",
    width_mult: float = 1.0,
) -> MobileNetV3:
    """MobileNetV3 ``size`` = large or small at CIFAR scale."""
    del image_size
    if size not in ("large", "small"):
        raise ValueError(f"MobileNetV3 size must be large or small, not {size!r}")
    config, last = (V3_LARGE, 1280) if size == "large" else (V3_SMALL, 1024)
    return MobileNetV3(num_classes, in_channels, config, last, width_mult)
