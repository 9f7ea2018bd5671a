"""The layout guard: strided 1x1 convolutions that crash fp32 CPU training are recomputed."""

from __future__ import annotations

import torch

from robustlab.models import build_model
from robustlab.training.config import TrainConfig
from robustlab.training.layout import (
    SubsampledPointwiseConv2d,
    channels_last_for_evaluation,
    crashing_convolutions,
    guard_strided_pointwise,
    memory_format,
)

CPU = torch.device("cpu")


def narrow_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("preact_resnet18", 10, 1, 28, base_width=4)


def test_finds_the_narrow_strided_shortcut_only():
    # base_width 4: the first projection shortcut maps 4 -> 8 channels with a strided 1x1 conv;
    # the later ones have 8 and 16 input channels and are safe
    assert crashing_convolutions(narrow_resnet()) == ["net.blocks.2.shortcut"]
    assert crashing_convolutions(build_model("preact_resnet18", 10, 1, 28, base_width=8)) == []


def test_guard_keeps_parameters_and_outputs():
    model, reference = narrow_resnet().eval(), narrow_resnet().eval()
    assert guard_strided_pointwise(model, CPU) == ["net.blocks.2.shortcut"]
    assert isinstance(model.net.blocks[2].shortcut, SubsampledPointwiseConv2d)
    assert model.state_dict().keys() == reference.state_dict().keys()
    assert crashing_convolutions(model) == []  # guarded once
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        # the same multiply-adds on the same pixels
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_guarded_model_trains_in_fp32_channels_last():
    # unguarded, this step aborts the interpreter with heap corruption (torch 2.13 CPU)
    model = narrow_resnet()
    fmt = memory_format(TrainConfig(amp="none", channels_last=True), model, CPU)
    assert fmt == torch.channels_last
    model = model.to(memory_format=fmt)
    x = torch.rand(50, 1, 28, 28).contiguous(memory_format=fmt)
    for _ in range(3):
        model(x).logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layout_follows_the_setting():
    model = build_model("small_cnn", 10, 1, 28)
    assert memory_format(TrainConfig(channels_last=False), model, CPU) == torch.preserve_format
    evaluated = channels_last_for_evaluation(narrow_resnet(), CPU)
    assert isinstance(evaluated.net.blocks[2].shortcut, SubsampledPointwiseConv2d)
