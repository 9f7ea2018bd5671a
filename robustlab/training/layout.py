"""Which memory layout training and evaluation use: channels_last where it is safe.

channels_last roughly doubles fp32 and bf16 convolution throughput on CPU
(bench/train_speed.py), but torch 2.13's CPU build aborts with heap corruption ("double free or
corruption") in the fp32 backward pass of a 1x1 convolution with stride > 1 and fewer than 8
input channels in channels_last layout (a projection shortcut of a very narrow ResNet, e.g.
preact_resnet18 with base_width 4). Such models keep the default layout in fp32 on CPU.
Evaluation (always fp32) uses channels_last on the same terms: 1.3-1.5x faster attack steps on
CPU (bench/attack_speed.py).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from robustlab.training.config import TrainConfig
from robustlab.training.precision import resolve_amp

#: the smallest input-channel count of a strided 1x1 convolution that fp32 channels_last
#: training on CPU survives (measured: 1-7 abort, 8, 12 and 16 run)
MIN_SAFE_STRIDED_POINTWISE_CHANNELS = 8


def crashing_convolutions(model: nn.Module) -> list[str]:
    """Names of ``model``'s convolutions that fp32 channels_last training on CPU aborts in."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and any(s > 1 for s in module.stride)
        and module.in_channels < MIN_SAFE_STRIDED_POINTWISE_CHANNELS
    ]


def memory_format(
    config: TrainConfig, model: nn.Module, device: torch.device
) -> torch.memory_format:
    """channels_last when ``config.channels_last`` is set and the step can use it safely,
    else the tensors' own layout (with a warning naming the layer that prevents it)."""
    if not config.channels_last:
        return torch.preserve_format
    fp32_cpu = device.type == "cpu" and resolve_amp(config.amp, device) == "none"
    blocking = crashing_convolutions(model) if fp32_cpu else []
    if blocking:
        warnings.warn(
            f"train.channels_last ignored: fp32 channels_last training on CPU aborts in the "
            f"strided 1x1 convolution {blocking[0]!r} (fewer than "
            f"{MIN_SAFE_STRIDED_POINTWISE_CHANNELS} input channels); the default layout is used",
            stacklevel=2,
        )
        return torch.preserve_format
    return torch.channels_last


def channels_last_for_evaluation(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with channels_last weights where fp32 evaluation on ``device`` can use them
    (every device but a CPU with a convolution :func:`crashing_convolutions` names); only the
    layout changes, the values are the same."""
    if device.type == "cpu" and crashing_convolutions(model):
        return model
    return model.to(memory_format=torch.channels_last)
