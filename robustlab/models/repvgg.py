"""RepVGG (Ding et al.) at CIFAR scale, with structural re-parameterisation.

Training-time block: ReLU(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x)) (identity branch only when
shapes match). :meth:`RepVGGBlock.reparameterize` folds the three branches into one 3x3 conv with
bias, so the network becomes a plain VGG-like stack of conv3x3-ReLU with the same outputs in eval
mode. CIFAR adaptation: the stem and the first stage use stride 1, the later stages stride 2.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _fuse(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` as a single conv (BN in eval mode)."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    """3x3 + 1x1 + identity branches, each with BN, summed and ReLU-ed (or one fused conv)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.conv3 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 1, stride, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.bn_id = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return F.relu(self.fused(x))
        out = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x))
        if self.bn_id is not None:
            out = out + self.bn_id(x)
        return F.relu(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one 3x3 conv with bias (uses the BN running statistics)."""
        if self.fused is not None:
            return
        kernel, bias = _fuse(self.conv3.weight, self.bn3)
        k1, b1 = _fuse(self.conv1.weight, self.bn1)
        kernel = kernel + F.pad(k1, [1, 1, 1, 1])
        bias = bias + b1
        if self.bn_id is not None:
            identity = torch.zeros_like(self.conv3.weight)
            index = torch.arange(self.in_ch, device=identity.device)
            identity[index, index, 1, 1] = 1
            kid, bid = _fuse(identity, self.bn_id)
            kernel, bias = kernel + kid, bias + bid
        fused = nn.Conv2d(self.in_ch, self.out_ch, 3, self.stride, 1, bias=True)
        fused = fused.to(device=kernel.device, dtype=kernel.dtype)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        self.fused = fused
        del self.conv3, self.bn3, self.conv1, self.bn1, self.bn_id
        self.bn_id = None


class RepVGG(nn.Module):
    """Stem block, four stages of RepVGG blocks, global pool, linear."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        depths: tuple[int, ...] = (2, 4, 14, 1),
        a: float = 0.75,
        b: float = 2.5,
    ) -> None:
        super().__init__()
        widths = [round(64 * a), round(128 * a), round(256 * a), round(512 * b)]
        ch = min(64, round(64 * a))
        layers: list[nn.Module] = [RepVGGBlock(in_channels, ch, 1)]
        for s, (d, w) in enumerate(zip(depths, widths, strict=True)):
            for i in range(d):
                layers.append(RepVGGBlock(ch, w, 2 if i == 0 and s > 0 else 1))
                ch = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


# name: (depths, a, b) from the RepVGG paper.
REPVGG = {
    "a0": ((2, 4, 14, 1), 0.75, 2.5),
    "a1": ((2, 4, 14, 1), 1.0, 2.5),
    "b0": ((4, 6, 16, 1), 1.0, 2.5),
}


def repvgg(
    num_classes: int,
    in_channels: int,
    image_size: int,
    variant: str = "a0",
    width_mult: float = 1.0,
) -> RepVGG:
    """RepVGG-``variant`` (a0, a1, b0); ``width_mult`` scales the multipliers a and b."""
    del image_size
    if variant not in REPVGG:
        raise ValueError(f"unknown RepVGG variant {variant!r}; known: {', '.join(REPVGG)}")
    depths, a, b = REPVGG[variant]
    return RepVGG(num_classes, in_channels, depths, a * width_mult, b * width_mult)


def reparameterize(model: nn.Module) -> nn.Module:
    """Fold every re-parameterisable block of ``model`` (in place) for inference; returns it."""
    for module in list(model.modules()):
        if isinstance(module, RepVGGBlock):
            module.reparameterize()
    return model
