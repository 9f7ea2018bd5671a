"""RegNetX (Radosavovic et al.) at CIFAR scale: quantised linear widths, X blocks, no SE.

Widths come from the design-space parameters (w0, wa, wm, depth, group width): per-block widths
``w0 + wa x j`` are snapped to ``w0 x wm^k`` and to multiples of 8, consecutive equal widths form
a stage, and each width is made a multiple of its group width. CIFAR adaptation: the stem and the
first stage keep the resolution (stride 1), the other three stages halve it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlab.models.mobilenet import conv_bn_act

# name: (w0, wa, wm, depth, group width) from the RegNet paper's model zoo.
REGNETX = {
    "200mf": (24, 36.44, 2.49, 13, 8),
    "400mf": (24, 24.48, 2.54, 22, 16),
    "600mf": (48, 36.97, 2.24, 16, 24),
    "800mf": (56, 35.73, 2.28, 16, 16),
}


def regnet_stages(
    w0: float, wa: float, wm: float, depth: int, group_width: int, width_mult: float = 1.0
) -> list[tuple[int, int, int]]:
    """(width, depth, group width) per stage of a RegNet design."""
    widths = []
    for j in range(depth):
        k = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        widths.append(max(8, round(w0 * wm**k * width_mult / 8) * 8))
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        g = min(group_width, w)
        out.append((max(g, round(w / g) * g), d, g))
    return out


class XBlock(nn.Module):
    """1x1 - grouped 3x3 (stride) - 1x1, BN after each, ReLU; projection shortcut if needed."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, group_width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(in_ch, out_ch, 1, 1, 1, "relu"),
            conv_bn_act(out_ch, out_ch, 3, stride, out_ch // group_width, "relu"),
            conv_bn_act(out_ch, out_ch, 1, 1, 1, None),
        )
        self.shortcut = (
            conv_bn_act(in_ch, out_ch, 1, stride, 1, None)
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class RegNet(nn.Module):
    """Stem conv3x3 (32) - four stages of X blocks - pool - linear."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stages: list[tuple[int, int, int]],
        stem_width: int = 32,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(in_channels, stem_width, 3, 1, 1, "relu")]
        ch = stem_width
        for s, (w, d, g) in enumerate(stages):
            for i in range(d):
                layers.append(XBlock(ch, w, 2 if i == 0 and s > 0 else 1, g))
                ch = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def regnetx(
    num_classes: int,
    in_channels: int,
    image_size: int,
    variant: str = "200mf",
    width_mult: float = 1.0,
) -> RegNet:
    """RegNetX-``variant`` (200mf, 400mf, 600mf, 800mf); ``width_mult`` scales every width."""
    del image_size
    if variant not in REGNETX:
        raise ValueError(f"unknown RegNetX variant {variant!r}; known: {', '.join(REGNETX)}")
    return RegNet(num_classes, in_channels, regnet_stages(*REGNETX[variant], width_mult))
