"""The training layout: channels_last except where fp32 CPU training would abort in it."""

from __future__ import annotations

import pytest
import torch

from robustlab.models import build_model
from robustlab.training.config import TrainConfig
from robustlab.training.layout import crashing_convolutions, memory_format

CPU = torch.device("cpu")


def narrow_resnet() -> torch.nn.Module:
    return build_model("preact_resnet18", 10, 1, 28, base_width=4)


def test_finds_the_narrow_strided_shortcut():
    # base_width 4: the first projection shortcut maps 4 -> 8 channels with a strided 1x1 conv;
    # the later ones have 8 and 16 input channels and are safe
    assert crashing_convolutions(narrow_resnet()) == ["net.blocks.2.shortcut"]
    assert crashing_convolutions(build_model("preact_resnet18", 10, 1, 28, base_width=8)) == []


def test_fp32_cpu_falls_back_with_a_warning_naming_the_layer():
    config = TrainConfig(amp="none", channels_last=True)
    with pytest.warns(UserWarning, match="net.blocks.2.shortcut"):
        assert memory_format(config, narrow_resnet(), CPU) == torch.preserve_format


def test_channels_last_where_safe_or_in_bf16():
    wide = build_model("preact_resnet18", 10, 1, 28, base_width=8)
    assert memory_format(TrainConfig(amp="none", channels_last=True), wide, CPU) == (
        torch.channels_last
    )
    assert memory_format(TrainConfig(amp="bf16", channels_last=True), narrow_resnet(), CPU) == (
        torch.channels_last
    )
    assert memory_format(TrainConfig(channels_last=False), wide, CPU) == torch.preserve_format
