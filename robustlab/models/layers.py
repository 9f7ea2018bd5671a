"""Building blocks shared by the architectures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F


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
    """``Normalize`` followed by a network; ``family`` is cnn, transformer or mlp.

    With ``input_resolution``, images are first resized (bilinear, anti-aliased) to that side
    length inside the model, so a network can run at another resolution than the data while
    attack budgets stay defined on the stored images.
    """

    def __init__(
        self, net: nn.Module, normalize: Normalize, family: str, input_resolution: int | None = None
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net
        self.family = family
        self.input_resolution = input_resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.input_resolution
        if r is not None and tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        return self.net(self.normalize(x))


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
}

NORMS = ("batch", "group", "layer", "instance")


def make_activation(name: str) -> nn.Module:
    """An activation module by name (relu, relu6, silu, gelu, softplus, hardswish, ...)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        known = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; known: {known}") from None


def make_norm(name: str, channels: int) -> nn.Module:
    """A 2-d normalisation layer by name.

    ``batch``: BatchNorm2d; ``group``: GroupNorm with the largest power-of-two number of groups
    up to 32 dividing ``channels``; ``layer``: GroupNorm with one group (normalises C, H, W);
    ``instance``: GroupNorm with one group per channel (InstanceNorm with affine parameters).
    """
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        groups = 32
        while channels % groups:
            groups //= 2
        return nn.GroupNorm(groups, channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)
    if name == "instance":
        return nn.GroupNorm(channels, channels)
    raise ValueError(f"unknown normalisation {name!r}; known: {', '.join(NORMS)}")


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor``, never below 90 % of it (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: ``x * gate(fc2(act(fc1(mean_hw(x)))))``."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        activation: str = "relu",
        gate: str = "sigmoid",
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, max(1, hidden), bias=bias)
        self.act = make_activation(activation)
        self.fc2 = nn.Linear(max(1, hidden), channels, bias=bias)
        self.gate = make_activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3))))))
        return x * weights[:, :, None, None]
