"""Architecture registry: ``build_model(name, num_classes, in_channels, image_size, **overrides)``.

Every entry takes the same constructor signature; sized variants are thin presets (partials) over
one configurable class per family, and any preset option can be overridden by keyword (e.g.
``build_model("resnet18", 10, 1, 28, width_mult=0.25)`` for a CPU-sized ResNet-18). Models take
float images in [0, 1]; normalisation is inside the model. ``docs/architectures.md`` has the
table of names, families, parameters and MACs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from robustlab.models.complexity import count_macs, count_params, model_size
from robustlab.models.densenet import densenet121
from robustlab.models.layers import Classifier, Normalize
from robustlab.models.mobilenet import mobilenet_v2, mobilenet_v3
from robustlab.models.pointwise import guard_strided_pointwise
from robustlab.models.regnet import regnetx
from robustlab.models.repvgg import reparameterize, repvgg
from robustlab.models.resnet import preact_resnet18, wide_resnet
from robustlab.models.robust_resnet import (
    ROBUST_PRESETS,
    resnet_cifar,
    robust_resnet,
    robust_scaling,
)
from robustlab.models.shufflenet import shufflenet_v2
from robustlab.models.small_cnn import SmallCNN
from robustlab.models.vgg import vgg_bn
from robustlab.models.vit import mlp_mixer, vit
from robustlab.registry import Registry

FAMILIES = ("cnn", "transformer", "mlp")


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its constructor and its family (cnn, transformer, mlp)."""

    constructor: Callable[..., nn.Module]
    family: str


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def _register(
    name: str, constructor: Callable[..., nn.Module], family: str = "cnn", **preset
) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    if preset:
        constructor = functools.partial(constructor, **preset)
    ARCHITECTURES.register(name)(Architecture(constructor, family))


# Small baselines and the classic (pre-activation) ResNets / WRNs.
_register("small_cnn", SmallCNN)
_register("preact_resnet18", preact_resnet18)
_register("wrn", wide_resnet)
for _depth, _k in [(10, 2), (16, 2), (16, 4), (28, 10), (34, 10), (34, 12), (34, 20), (46, 14)]:
    _register(f"wrn_{_depth}_{_k}", wide_resnet, depth=_depth, widen_factor=_k)
_register("wrn_70_16", wide_resnet, depth=70, widen_factor=16)
_register("wrn_34_r", wide_resnet, depth=34, widen_factors=(20, 20, 8))  # Huang et al. 2021

# RobustResNet: RobustResBlock + RobustScaling; WRN-A = RobustScaling on the WRN block.
_register("robust_resnet", robust_resnet)
for _name, (_d, _w) in ROBUST_PRESETS.items():
    _register(f"robust_resnet_{_name}", robust_resnet, depths=_d, widths=_w)
    _register(f"wrn_{_name}", wide_resnet, depths=_d, widen_factors=_w)
# robust_scaling(20e6, "bottleneck", 28, in_channels=1): 23.2M MACs on 28x28x1 (widths cannot
# go below 1, so sum D : sum W is 5:3 here, not 7:3).
_register("robust_resnet_tiny", robust_resnet, depths=(2, 2, 1), widths=(1, 1, 1))

# RobustART's CNN families at CIFAR scale (3x3 stride-1 stems, no max-pool).
_register("resnet18", resnet_cifar, depths=(2, 2, 2, 2), block="basic")
_register("resnet34", resnet_cifar, depths=(3, 4, 6, 3), block="basic")
_register("resnet50", resnet_cifar, depths=(3, 4, 6, 3), block="bottleneck")
_register(
    "resnext50_32x4d",
    resnet_cifar,
    depths=(3, 4, 6, 3),
    block="bottleneck",
    cardinality=32,
    base_width=4,
)
_register("densenet121", densenet121)
_register("vgg16_bn", vgg_bn, variant="vgg16")
_register("vgg19_bn", vgg_bn, variant="vgg19")
_register("mobilenet_v2", mobilenet_v2)
_register("mobilenet_v3_small", mobilenet_v3, size="small")
_register("mobilenet_v3_large", mobilenet_v3, size="large")
_register("shufflenet_v2", shufflenet_v2)
_register("regnetx_200mf", regnetx, variant="200mf")
_register("regnetx_400mf", regnetx, variant="400mf")
_register("repvgg_a0", repvgg, variant="a0")
_register("repvgg_b0", repvgg, variant="b0")

# Transformers (4 px patches at CIFAR scale) and MLP-Mixers.
_register("vit", vit, "transformer")
_register("vit_tiny", vit, "transformer", dim=96, depth=6, heads=3)  # small scale, CPU
_register("deit_tiny", vit, "transformer", dim=192, depth=12, heads=3)
_register("deit_small", vit, "transformer", dim=384, depth=12, heads=6)
_register("vit_base", vit, "transformer", dim=768, depth=12, heads=12)
_register("mlp_mixer", mlp_mixer, "mlp")
_register(
    "mlp_mixer_tiny", mlp_mixer, "mlp", dim=128, depth=8, token_mlp_dim=64, channel_mlp_dim=256
)
_register(
    "mlp_mixer_small", mlp_mixer, "mlp", dim=512, depth=8, token_mlp_dim=256, channel_mlp_dim=2048
)
_register(
    "mlp_mixer_base", mlp_mixer, "mlp", dim=768, depth=12, token_mlp_dim=384, channel_mlp_dim=3072
)


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_resolution: int | None = None,
    **overrides,
) -> Classifier:
    """Build a registered architecture wrapped with input normalisation.

    ``mean``/``std`` default to 0.5 per channel; ``overrides`` go to the architecture's
    constructor (e.g. ``base_width=16`` for ``preact_resnet18``). An unknown name raises
    :class:`~robustlab.registry.UnknownNameError` listing the known names.
    ``input_resolution`` builds the network for that side length and resizes inputs of
    ``image_size`` to it inside the model (the input-resolution axis of architecture sweeps).
    """
    arch = ARCHITECTURES.get(name)
    if input_resolution is not None and input_resolution < 1:
        raise ValueError(f"input_resolution must be a positive side length, got {input_resolution}")
    size = input_resolution or image_size
    try:
        net = arch.constructor(num_classes, in_channels, size, **overrides)
    except TypeError as err:
        raise TypeError(f"architecture {name!r}: bad option in {overrides}: {err}") from None
    guard_strided_pointwise(net)  # a CPU kernel crash (robustlab.models.pointwise)
    normalize = Normalize(mean or [0.5] * in_channels, std or [0.5] * in_channels)
    return Classifier(net, normalize, arch.family, input_resolution)


def architecture_family(name: str) -> str:
    """cnn, transformer or mlp."""
    return ARCHITECTURES.get(name).family


__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "Architecture",
    "architecture_family",
    "build_model",
    "count_macs",
    "count_params",
    "model_size",
    "reparameterize",
    "robust_scaling",
]
