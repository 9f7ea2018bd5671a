"""Every registered architecture: builds, runs forward/backward, channels_last, sizes, presets."""

from __future__ import annotations

import functools
import io

import pytest
import torch

from robustlab.models import (
    ARCHITECTURES,
    FAMILIES,
    architecture_family,
    build_model,
    count_macs,
    count_params,
    model_size,
    reparameterize,
)

# Small options per name prefix (longest prefix wins) so every architecture runs in milliseconds.
TINY = {
    "small_cnn": {"width": 4, "hidden": 8},
    "preact_resnet18": {"base_width": 4},
    "wrn": {"depths": (1, 1, 1), "widen_factors": (1, 1, 1)},
    "robust_resnet": {"depths": (1, 1, 1), "widths": (1, 1, 1)},
    "resnet": {"width_mult": 0.125},
    "resnext": {"width_mult": 0.125},
    "densenet": {"growth": 4, "blocks": (2, 2, 2, 2)},
    "vgg": {"width_mult": 0.125},
    "mobilenet": {"width_mult": 0.25},
    "shufflenet": {"width_mult": 0.5},
    "regnetx": {"width_mult": 0.25},
    "repvgg": {"width_mult": 0.125},
    "vit": {"dim": 16, "depth": 1, "heads": 2},
    "deit": {"dim": 16, "depth": 1, "heads": 2},
    "mlp_mixer": {"dim": 16, "depth": 1, "token_mlp_dim": 8, "channel_mlp_dim": 16},
}
ALL = ARCHITECTURES.names()


def tiny(name: str) -> dict:
    prefix = max((p for p in TINY if name.startswith(p)), key=len, default=None)
    assert prefix is not None, f"add small options for {name!r} to TINY"
    return TINY[prefix]


@pytest.mark.parametrize("name", ALL)
def test_architecture_runs_forward_and_backward(name):
    for channels, size in [(1, 28), (3, 32), (1, 32), (3, 28)]:
        torch.manual_seed(0)
        model = build_model(name, 5, channels, size, **tiny(name))
        x = torch.rand(2, channels, size, size)
        out = model(x)
        assert out.shape == (2, 5), (name, channels, size)
        out.square().sum().backward()
        dead = [n for n, p in model.named_parameters() if p.grad is None]
        assert not dead, f"{name}: parameters without gradient {dead[:5]}"
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_channels_last_gives_the_same_logits(name):
    torch.manual_seed(0)
    model = build_model(name, 5, 3, 32, **tiny(name)).eval()
    x = torch.rand(2, 3, 32, 32)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_architecture_trains_on_cuda_with_bf16_and_channels_last(name):
    model = build_model(name, 5, 3, 32, **tiny(name)).cuda().to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    out.float().square().sum().backward()
    assert out.shape == (4, 5)


def test_families_are_recorded():
    for name in ALL:
        assert architecture_family(name) in FAMILIES
    assert {architecture_family(n) for n in ("vit_tiny", "deit_tiny", "vit_base")} == {
        "transformer"
    }
    assert {architecture_family(n) for n in ("mlp_mixer_tiny", "mlp_mixer_base")} == {"mlp"}
    assert architecture_family("robust_resnet_a1") == "cnn"
    assert build_model("vit_tiny", 10, 1, 28).family == "transformer"


def test_unknown_name_lists_the_new_architectures_too():
    with pytest.raises(KeyError) as err:
        build_model("robust_resnet_a9", 10)
    for name in ("robust_resnet_a1", "vit_tiny", "mlp_mixer_tiny", "repvgg_a0", "densenet121"):
        assert name in str(err.value)


@functools.lru_cache
def _meta_size(name: str, channels: int = 3, size: int = 32) -> tuple[int, int]:
    with torch.device("meta"):
        model = build_model(name, 10, channels, size)
    return count_params(model), count_macs(model, (channels, size, size))


# RobustResNet paper (Tables 2 and 5): params, MACs at 32x32x3 with 10 classes.
PAPER = {
    "robust_resnet_a1": (19.2e6, 5.11e9),
    "robust_resnet_a2": (39.0e6, 10.8e9),
    "robust_resnet_a3": (75.9e6, 19.9e9),
    "robust_resnet_a4": (147e6, 39.4e9),
    "wrn_28_10": (36.5e6, 5.20e9),
    "wrn_34_10": (46.2e6, 6.66e9),
    "wrn_34_12": (66.5e6, 9.60e9),
    "wrn_46_14": (128e6, 18.6e9),
    "wrn_70_16": (267e6, 38.8e9),
    "wrn_34_r": (68.1e6, 19.1e9),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_preset_sizes_match_the_paper(name):
    params, macs = _meta_size(name)
    paper_params, paper_macs = PAPER[name]
    assert abs(params - paper_params) / paper_params < 0.01, (name, params)
    assert abs(macs - paper_macs) / paper_macs < 0.03, (name, macs)


@pytest.mark.parametrize("level", ["a1", "a2", "a3", "a4"])
def test_wrn_a_presets_are_robust_scaling_on_the_basic_block(level):
    # No paper table row: the notes' basic-block estimate MACs ~ 4.72e6 x sum_i D_i W_i^2.
    from robustlab.models.robust_resnet import ROBUST_PRESETS

    depths, widths = ROBUST_PRESETS[level]
    _, macs = _meta_size(f"wrn_{level}")
    estimate = 4.72e6 * sum(d * w * w for d, w in zip(depths, widths, strict=True))
    assert abs(macs - estimate) / estimate < 0.03


@pytest.mark.parametrize("name", ALL)
def test_every_architecture_builds_at_full_size_on_meta(name):
    params, macs = _meta_size(name)
    assert params > 0 and macs > 0


def test_small_variants_fit_a_cpu_grid():
    # 28x28 grey images, 10 classes: the documented small-scale budget.
    for name in ("robust_resnet_tiny", "wrn_10_2", "vit_tiny", "mlp_mixer_tiny"):
        params, macs = _meta_size(name, 1, 28)
        assert params < 1e6 and 15e6 < macs < 60e6, (name, params, macs)


def test_model_size_reports_params_trainable_params_and_macs():
    model = build_model("vit_tiny", 10, 1, 28)
    for p in model.net.patch.parameters():
        p.requires_grad_(False)
    size = model_size(model, (1, 28, 28))
    assert size["params"] == count_params(model)
    assert size["params"] - size["trainable_params"] == 96 * 16 + 96
    assert size["macs"] == count_macs(model, (1, 28, 28))


def test_attention_matmuls_are_counted():
    model = build_model("vit", 10, 1, 8, dim=8, depth=1, heads=2, patch_size=4, mlp_ratio=2.0)
    tokens, dim = 4 + 1, 8
    expected = (
        4 * 8 * 16  # patch embedding: 4 patches x 8 outputs x 16 inputs
        + tokens * dim * 3 * dim  # qkv
        + 2 * tokens * tokens * dim  # q @ k^T and attn @ v
        + tokens * dim * dim  # output projection
        + 2 * tokens * dim * 2 * dim  # MLP
        + dim * 10  # head
    )
    assert count_macs(model, (1, 8, 8)) == expected


def test_repvgg_reparameterisation_gives_a_plain_network_with_equal_outputs():
    torch.manual_seed(0)
    model = build_model("repvgg_a0", 10, 3, 32, width_mult=0.25)
    model.train()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32) * 2)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.rand(4, 3, 32, 32)
    before = model(x)
    params_before = count_params(model)
    reparameterize(model)
    after = model(x)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert count_params(model) < params_before


# ptflops' ATen backend counts exactly the matmuls and convolutions, plus bias additions.
PTFLOPS_CASES = [
    ("resnet18", {"width_mult": 0.25}),
    ("robust_resnet_tiny", {}),
    ("wrn_10_2", {}),
    ("densenet121", {"growth": 8, "blocks": (2, 2, 2, 2)}),
    ("mobilenet_v3_small", {"width_mult": 0.5}),
    ("shufflenet_v2", {"width_mult": 0.5}),
    ("vit_tiny", {}),
    ("mlp_mixer_tiny", {}),
]


@pytest.mark.parametrize("name,options", PTFLOPS_CASES, ids=[c[0] for c in PTFLOPS_CASES])
def test_mac_counts_agree_with_ptflops(name, options):
    ptflops = pytest.importorskip("ptflops", reason="ptflops is not installed (dev dependency)")
    aten = torch.ops.aten

    def addmm_without_bias(inputs, outputs):  # our convention: bias additions are not MACs
        (rows, inner), (_, cols) = inputs[1].shape, inputs[2].shape
        return rows * inner * cols

    model = build_model(name, 10, 1, 28, **options).eval()
    theirs, params = ptflops.get_model_complexity_info(
        model,
        (1, 28, 28),
        as_strings=False,
        print_per_layer_stat=False,
        backend="aten",
        custom_modules_hooks={aten.addmm: addmm_without_bias},
        ost=io.StringIO(),
    )
    ours = count_macs(model, (1, 28, 28))
    assert params == count_params(model)
    assert abs(theirs - ours) / ours < 0.01, (name, ours, theirs)
