"""Architecture registry: ``build_model(name, num_classes, in_channels, image_size, **overrides)``.

Every entry takes the same constructor signature; sized variants are thin presets over one
configurable class. Models take float images in [0, 1]; normalisation is inside the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from robustlab.models.complexity import count_macs, count_params
from robustlab.models.layers import Classifier, Normalize
from robustlab.models.resnet import preact_resnet18, wide_resnet
from robustlab.models.small_cnn import SmallCNN
from robustlab.registry import Registry


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its constructor and its family (cnn, transformer, mlp)."""

    constructor: Callable[..., nn.Module]
    family: str


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def _register(name: str, constructor: Callable[..., nn.Module], family: str = "cnn") -> None:
    ARCHITECTURES.register(name)(Architecture(constructor, family))


_register("small_cnn", SmallCNN)
_register("preact_resnet18", preact_resnet18)
_register("wrn", wide_resnet)
for _depth, _k in [(16, 2), (16, 4), (28, 10), (34, 10), (34, 20), (70, 16)]:
    _register(f"wrn_{_depth}_{_k}", functools.partial(wide_resnet, depth=_depth, widen_factor=_k))


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **overrides,
) -> Classifier:
    """Build a registered architecture wrapped with input normalisation.

    ``mean``/``std`` default to 0.5 per channel; ``overrides`` go to the architecture's
    constructor (e.g. ``base_width=16`` for ``preact_resnet18``).
    """
    arch = ARCHITECTURES.get(name)
    try:
        net = arch.constructor(num_classes, in_channels, image_size, **overrides)
    except TypeError as err:
        raise TypeError(f"architecture {name!r}: bad option in {overrides}: {err}") from None
    normalize = Normalize(mean or [0.5] * in_channels, std or [0.5] * in_channels)
    return Classifier(net, normalize, arch.family)


def architecture_family(name: str) -> str:
    """cnn, transformer or mlp."""
    return ARCHITECTURES.get(name).family


__all__ = [
    "ARCHITECTURES",
    "architecture_family",
    "build_model",
    "count_macs",
    "count_params",
]
