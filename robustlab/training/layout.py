"""Memory layout for training and evaluation, and a guard against a crashing CPU kernel.

channels_last roughly doubles fp32 and bf16 convolution throughput on CPU
(bench/train_speed.py, bench/hardware_efficiency.py). torch 2.13's CPU build corrupts the heap
("double free or corruption", then an abort or a segfault) in the fp32 backward pass of a 1x1
convolution with stride > 1 and fewer than 8 input channels: always in channels_last, now and
then in the default layout (a projection shortcut of a very narrow ResNet, e.g. preact_resnet18
with base_width 4). :func:`guard_strided_pointwise` computes such convolutions as a stride-1
1x1 convolution of the subsampled input, which is the same arithmetic (a 1x1 kernel without
padding reads exactly the pixels a stride-s convolution visits) and runs a different kernel.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.training.config import TrainConfig

#: the smallest input-channel count of a strided 1x1 convolution that fp32 training on CPU
#: survives (measured: 1-7 abort, 8, 12 and 16 run)
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
        and module.in_channels < MIN_SAFE_STRIDED_POINTWISE_CHANNELS
    ]


def guard_strided_pointwise(model: nn.Module, device: torch.device) -> list[str]:
    """On CPU, switch every convolution :func:`crashing_convolutions` names (without padding
    or dilation) to :class:`SubsampledPointwiseConv2d`: same parameters, same state dict, same
    outputs. Returns the names switched."""
    if device.type != "cpu":
        return []
    modules = dict(model.named_modules())
    switched = []
    for name in crashing_convolutions(model):
        conv = modules[name]
        if conv.padding == (0, 0) and conv.dilation == (1, 1):
            conv.__class__ = SubsampledPointwiseConv2d
            switched.append(name)
    return switched


def memory_format(
    config: TrainConfig, model: nn.Module, device: torch.device
) -> torch.memory_format:
    """channels_last when ``config.channels_last`` is set, else the tensors' own layout; guards
    ``model``'s crashing convolutions first (:func:`guard_strided_pointwise`)."""
    guard_strided_pointwise(model, device)
    return torch.channels_last if config.channels_last else torch.preserve_format


def channels_last_for_evaluation(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with channels_last weights and its crashing convolutions guarded; only the
    layout and the kernels change, the values are the same (1.05-1.5x faster attack steps on
    CPU: bench/hardware_efficiency.py)."""
    guard_strided_pointwise(model, device)
    return model.to(memory_format=torch.channels_last)
