"""A guard against a crashing CPU kernel: strided 1x1 convolutions on very few channels.

torch 2.13's CPU build corrupts the heap ("double free or corruption", then an abort or a
segfault) in the fp32 backward pass of a 1x1 convolution with stride > 1 and fewer than 8 input
channels: always in channels_last, now and then in the default layout (a projection shortcut of
a very narrow ResNet, e.g. preact_resnet18 with base_width 4; measured: 1-7 input channels
abort, 8, 12 and 16 run). :func:`guard_strided_pointwise` computes such convolutions as a
stride-1 1x1 convolution of the subsampled input: the same multiply-adds (a 1x1 kernel without
padding reads exactly the pixels a stride-s convolution visits; another kernel may round their
sums apart by an ulp), the same parameters and state dict. :func:`robustlab.models.build_model`
applies it to every model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: the smallest input-channel count of a strided 1x1 convolution that fp32 CPU backward passes
#: survive
MIN_SAFE_STRIDED_POINTWISE_CHANNELS = 8


class SubsampledPointwiseConv2d(nn.Conv2d):
    """A strided 1x1 convolution without padding, computed as subsample-then-convolve."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        return F.conv2d(x[:, :, ::sh, ::sw], self.weight, self.bias, 1, 0, 1, self.groups)


def crashing_convolutions(model: nn.Module) -> list[str]:
    """Names of ``model``'s convolutions whose fp32 backward pass corrupts the heap on CPU."""
    return [
        name
        for name, module in model.named_modules()
        if type(module) is nn.Conv2d
        and module.kernel_size == (1, 1)
        and any(s > 1 for s in module.stride)
        and module.padding == (0, 0)
        and module.dilation == (1, 1)
        and module.in_channels < MIN_SAFE_STRIDED_POINTWISE_CHANNELS
    ]


def guard_strided_pointwise(model: nn.Module) -> list[str]:
    """Switch every convolution :func:`crashing_convolutions` names to
    :class:`SubsampledPointwiseConv2d` in place; returns their names."""
    modules = dict(model.named_modules())
    names = crashing_convolutions(model)
    for name in names:
        modules[name].__class__ = SubsampledPointwiseConv2d
    return names
