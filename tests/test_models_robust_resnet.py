"""The configurable residual network (RobustResBlock and its options) and RobustScaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.models import build_model, count_macs, count_params, robust_scaling
from robustlab.models.robust_resnet import (
    ROBUST_PRESETS,
    BlockConfig,
    HierarchicalConv,
    ResidualBlock,
    ResidualNetwork,
    network_macs,
    robust_block_config,
)


def _tiny(block="bottleneck", **options):
    return build_model(
        "robust_resnet", 10, 1, 16, depths=(1, 2, 1), widths=(1, 1, 1), block=block, **options
    )


@pytest.mark.parametrize("block", ["basic", "bottleneck", "inverted_bottleneck"])
@pytest.mark.parametrize("preact", [True, False])
@pytest.mark.parametrize("se", ["none", "standard", "residual"])
def test_block_variants_train(block, preact, se):
    torch.manual_seed(0)
    model = _tiny(block, preact=preact, se=se, se_reduction=4)
    out = model(torch.rand(2, 1, 16, 16))
    out.sum().backward()
    assert out.shape == (2, 10)
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("activation", ["relu", "silu", "gelu", "softplus"])
@pytest.mark.parametrize("norm", ["batch", "group", "layer", "instance"])
def test_activation_and_normalisation_options(activation, norm):
    model = _tiny(activation=activation, norm=norm)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)
    acts = {type(m).__name__.lower() for m in model.modules()}
    assert {"relu": "relu", "silu": "silu", "gelu": "gelu", "softplus": "softplus"}[
        activation
    ] in acts


def test_kernel_size_per_stage_and_aggregation():
    model = _tiny("basic", kernel_size=(3, 5, 7), cardinality=2, scales=1)
    kernels = {m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert {3, 5, 7} <= kernels
    grouped = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 2]
    assert len(grouped) == 2 * 4  # two kxk convs in each of the four blocks
    model(torch.rand(1, 1, 16, 16))


def test_robust_res_block_matches_the_paper_description():
    cfg = robust_block_config("bottleneck")
    assert (cfg.cardinality, cfg.scales, cfg.se, cfg.se_reduction) == (4, 8, "residual", 64)
    block = ResidualBlock(320, 80, 1, 3, cfg)  # RobustResNet-A1, stage 1 (W1 = 5)
    assert block.conv1.out_channels == 160  # 1x1 to 2 x planes
    assert block.conv2.out_channels == 320  # 1x1 to 4 x planes
    spatial = block.spatial
    assert isinstance(spatial, HierarchicalConv) and len(spatial.convs) == 7
    assert all(c.groups == 4 and c.in_channels == 20 for c in spatial.convs)
    assert block.se.fc1.out_features == 320 // 64 and block.se_norm is not None
    assert block.shortcut is None


def test_hierarchical_sum_and_strided_pooling():
    conv = HierarchicalConv(8, 3, 1, 1, 4, "batch", "relu").eval()
    x = torch.rand(1, 8, 6, 6)
    out = conv(x)
    assert torch.equal(out[:, 6:], x[:, 6:])  # last chunk passes through
    strided = HierarchicalConv(8, 3, 2, 1, 4, "batch", "relu").eval()
    assert strided(x).shape == (1, 8, 3, 3)


def test_basic_block_rejects_hierarchical_convolution():
    with pytest.raises(ValueError, match="scales"):
        BlockConfig(block="basic", scales=4)
    with pytest.raises(ValueError, match="unknown block"):
        BlockConfig(block="fancy")
    with pytest.raises(ValueError, match="unknown activation"):
        BlockConfig(activation="swoosh")
    with pytest.raises(ValueError, match="unknown norm"):
        BlockConfig(norm="weight")
    with pytest.raises(ValueError, match="odd"):
        _tiny(kernel_size=4)


def test_basic_preact_network_is_the_wide_resnet():
    with torch.device("meta"):
        ours = build_model(
            "robust_resnet", 10, depths=(4, 4, 4), widths=(10, 10, 10), block="basic"
        )
        wrn = build_model("wrn_28_10", 10)
    assert count_params(ours) == count_params(wrn)
    assert count_macs(ours, (3, 32, 32)) == count_macs(wrn, (3, 32, 32))


@pytest.mark.parametrize(
    "cfg",
    [
        robust_block_config("bottleneck"),
        robust_block_config("basic", preact=False, se="standard"),
        robust_block_config("inverted_bottleneck", scales=2),
    ],
    ids=["robust", "basic-post-se", "inverted"],
)
def test_network_macs_equals_the_hook_count(cfg):
    depths, widths, kernels = (2, 1, 2), (1, 2, 1), (3, 5, 3)
    with torch.device("meta"):
        model = ResidualNetwork(10, 1, depths, widths, cfg, kernels)
    counted = count_macs(model, (1, 28, 28))
    assert network_macs(depths, widths, cfg, 28, 1, 10, kernels) == counted


@pytest.mark.parametrize("level,target", [("a1", 5e9), ("a2", 10e9), ("a3", 20e9), ("a4", 40e9)])
def test_robust_scaling_lands_near_the_paper_presets(level, target):
    depths, widths = robust_scaling(target, "basic", 32)
    preset_depths, preset_widths = ROBUST_PRESETS[level]
    assert all(abs(a - b) <= 1 for a, b in zip(depths, preset_depths, strict=True))
    assert all(abs(a - b) <= 1 for a, b in zip(widths, preset_widths, strict=True))
    cfg = robust_block_config("basic")
    assert abs(network_macs(depths, widths, cfg) - target) / target < 0.01
    assert abs(sum(depths) / (sum(depths) + sum(widths)) - 0.7) < 0.03


def test_robust_scaling_gives_the_tiny_preset():
    assert robust_scaling(20e6, "bottleneck", 28, in_channels=1) == ((2, 2, 1), (1, 1, 1))
    with torch.device("meta"):
        model = build_model("robust_resnet_tiny", 10, 1, 28)
    assert round(count_macs(model, (1, 28, 28)) / 1e6, 1) == 23.2


def test_robust_scaling_rejects_bad_targets():
    with pytest.raises(ValueError, match="positive"):
        robust_scaling(0)
    with pytest.raises(ValueError, match="depth_ratio"):
        robust_scaling(1e9, depth_ratio=1.5)


def _se_block(se: str, block: str = "bottleneck", preact: bool = True, in_ch: int = 32):
    from robustlab.models.robust_resnet import ResidualBlock, robust_block_config

    cfg = robust_block_config(
        block, preact=preact, se=se, se_reduction=4, scales=1, cardinality=1, base_width=64
    )
    torch.manual_seed(0)
    return ResidualBlock(in_ch, 16, 2, 3, cfg)


def test_se_integration_variants_structure_and_parameter_count():
    # bottleneck 32 -> planes 16 (mid 16, out 64), stride 2; SE weights 2 x C x C/4, no bias
    base = sum(p.numel() for p in _se_block("none").parameters())
    extra = {
        se: sum(p.numel() for p in _se_block(se).parameters()) - base
        for se in ("standard", "pre", "identity", "conv3x3", "residual")
    }
    assert extra["standard"] == 2 * 64 * 16  # SE on the 64 output channels
    assert extra["pre"] == 2 * 32 * 8  # on the 32 input channels
    assert extra["identity"] == 2 * 32 * 8  # on the skip input, before the projection
    assert extra["conv3x3"] == 2 * 16 * 4  # after the 3x3 stage, 16 channels
    assert extra["residual"] == 2 * 64 * 16 + 2 * 64  # plus the SE's batch norm
    x = torch.rand(2, 32, 8, 8)
    for se in extra:
        for block in ("basic", "bottleneck"):
            for preact in (True, False):
                out = _se_block(se, block, preact).eval()(x)
                assert out.shape == (2, 64 if block == "bottleneck" else 16, 4, 4)


def test_se_variants_change_the_output_where_they_sit():
    x = torch.rand(2, 32, 8, 8)
    plain = _se_block("none").eval()
    for se in ("pre", "identity", "conv3x3"):
        block = _se_block(se).eval()
        block.load_state_dict(plain.state_dict(), strict=False)
        with torch.no_grad():
            block.se.fc2.weight.zero_()  # gate 0.5 everywhere: halves what it scales
        if se == "identity":
            assert torch.allclose(
                block(x), plain(x) - 0.5 * plain.shortcut(torch.relu(plain.norm1(x))), atol=1e-5
            )
        else:
            assert not torch.allclose(block(x), plain(x))
    with pytest.raises(ValueError, match="unknown se"):
        _se_block("post")


def test_se_hidden_activation_is_relu_whatever_the_block_activation():
    from robustlab.models.robust_resnet import robust_block_config

    model = build_model(
        "robust_resnet", 10, 3, 32, depths=(1, 1, 1), widths=(1, 1, 1), activation="silu"
    )
    se = [m for m in model.modules() if m.__class__.__name__ == "SqueezeExcite"]
    assert se and all(isinstance(m.act, torch.nn.ReLU) for m in se)
    assert robust_block_config("bottleneck", se_activation="silu").se_activation == "silu"
    with pytest.raises(ValueError):
        robust_block_config("bottleneck", se_activation="swishy")
