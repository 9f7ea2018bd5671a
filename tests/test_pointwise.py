"""The guard against the CPU kernel crash of narrow strided 1x1 convolutions."""

from __future__ import annotations

import torch

from robustlab.models import build_model
from robustlab.models.pointwise import (
    SubsampledPointwiseConv2d,
    crashing_convolutions,
    guard_strided_pointwise,
)


def narrow_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("preact_resnet18", 10, 1, 28, base_width=4)


def test_build_model_guards_only_the_narrow_strided_shortcut():
    # base_width 4: the first projection shortcut maps 4 -> 8 channels with a strided 1x1 conv;
    # the later ones have 8 and 16 input channels and keep the plain convolution
    model = narrow_resnet()
    guarded = [n for n, m in model.named_modules() if isinstance(m, SubsampledPointwiseConv2d)]
    assert guarded == ["net.blocks.2.shortcut"]
    assert type(model.net.blocks[4].shortcut) is torch.nn.Conv2d
    wide = build_model("preact_resnet18", 10, 1, 28, base_width=8)
    assert not any(isinstance(m, SubsampledPointwiseConv2d) for m in wide.modules())


def test_guard_keeps_parameters_and_outputs():
    conv = torch.nn.Conv2d(4, 8, 1, stride=2, bias=True)
    reference = torch.nn.Conv2d(4, 8, 1, stride=2, bias=True)
    reference.load_state_dict(conv.state_dict())
    net = torch.nn.Sequential(conv)
    assert crashing_convolutions(net) == ["0"]
    assert guard_strided_pointwise(net) == ["0"]
    assert crashing_convolutions(net) == []  # guarded once
    assert conv.state_dict().keys() == reference.state_dict().keys()
    x = torch.rand(3, 4, 9, 9)  # odd side: the last row and column are read as well
    with torch.no_grad():
        # the same multiply-adds on the same pixels; another kernel may round the sums apart
        torch.testing.assert_close(net(x), reference(x), rtol=1e-5, atol=1e-6)


def test_guarded_model_trains_in_fp32_channels_last():
    # unguarded, this step aborts the interpreter with heap corruption (torch 2.13 CPU)
    model = narrow_resnet().to(memory_format=torch.channels_last)
    x = torch.rand(50, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        model(x).logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
