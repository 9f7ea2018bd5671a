"""Architecture sweeps: sample named variants from a declared design space (RobustART's NAS study).

A space is a dict (every key but ``base`` optional)::

    {
        "base": "robust_resnet",              # registered architecture the variants override
        "depths": [[1, 2], [1, 2], [1, 2]],   # per-stage choices of the number of blocks
        "widths": [[2], [2, 3], [1]],         # per-stage choices of the widening factor
        "kernel_size": [3, 5],                # one size for all stages, or per stage:
                                              #   [[3, 5], [3], [3, 5]]
        "block": ["basic", "bottleneck"],     # block types
        "image_size": [24, 28],               # input resolutions: returned as the build_model
                                              #   option ``input_resolution`` (the model
                                              #   resizes its inputs)
        "fixed": {"se": "none"},              # overrides shared by every variant
    }

:func:`sample_architectures` draws ``count`` distinct points uniformly without replacement and
returns ``{name: {"arch": base, **overrides}}`` sorted by name, where a name spells the point,
e.g. ``rrn_d1-2-1_w2-2-1_k3_basic_r28`` (d: depths, w: widths, k: kernel sizes, then the
block, r: resolution; ``.`` in a number becomes ``p``). The same space and seed give the same
sample on every machine.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from typing import Any

from robustlab.models import ARCHITECTURES

# Short prefixes for readable names; other bases use their registry name.
PREFIXES = {"robust_resnet": "rrn", "wrn": "wrn", "vit": "vit", "mlp_mixer": "mixer"}

# Axes of a space, in name order; per-stage axes take one list of choices per stage.
PER_STAGE = ("depths", "widths")
AXES = ("depths", "widths", "kernel_size", "block", "image_size")
KNOWN_KEYS = ("base", "fixed", *AXES)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace(".", "p").replace("-", "m")


def _axes(space: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(override key, list of choices) per axis; per-stage axes expand to tuples."""
    unknown = sorted(set(space) - set(KNOWN_KEYS))
    if unknown:
        raise ValueError(f"unknown sweep space keys {unknown}; known: {', '.join(KNOWN_KEYS)}")
    if "base" not in space:
        raise ValueError("a sweep space needs 'base': the registered architecture to vary")
    axes: list[tuple[str, list[Any]]] = []
    for key in AXES:
        if key not in space:
            continue
        choices = space[key]
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise ValueError(f"sweep space {key!r} must be a non-empty list of choices")
        per_stage = key in PER_STAGE or (
            key == "kernel_size" and all(isinstance(c, Sequence) for c in choices)
        )
        if per_stage:
            stages = [list(c) for c in choices]
            if not all(stages):
                raise ValueError(f"sweep space {key!r}: every stage needs at least one choice")
            axes.append((key, list(itertools.product(*stages))))
        else:
            axes.append((key, list(choices)))
    return axes


def space_size(space: dict[str, Any]) -> int:
    """Number of distinct variants in ``space``."""
    return math.prod(len(choices) for _, choices in _axes(space))


def variant_name(base: str, point: dict[str, Any]) -> str:
    """Readable, stable name of one point, e.g. ``rrn_d1-2-1_w2-2-1_k3_basic_r28``."""
    parts = [PREFIXES.get(base, base)]
    tags = {"depths": "d", "widths": "w", "kernel_size": "k", "image_size": "r"}
    for key in AXES:
        if key not in point:
            continue
        value = point[key]
        if key == "block":
            parts.append(str(value))
        elif isinstance(value, tuple):
            parts.append(tags[key] + "-".join(_number(v) for v in value))
        else:
            parts.append(tags[key] + _number(value))
    return "_".join(parts)


def sample_architectures(space: dict[str, Any], count: int, seed: int) -> dict[str, dict]:
    """``count`` distinct variants of ``space`` (format in the module docstring), by name.

    Raises ``ValueError`` when ``count`` exceeds the number of variants in the space.
    """
    axes = _axes(space)
    size = math.prod(len(choices) for _, choices in axes)
    if count < 0 or count > size:
        raise ValueError(f"cannot sample {count} distinct variants from a space of {size}")
    base = space["base"]
    ARCHITECTURES.get(base)  # an unknown base is an error listing the known names
    fixed = dict(space.get("fixed", {}))
    out: dict[str, dict] = {}
    for index in random.Random(seed).sample(range(size), count):
        point: dict[str, Any] = {}
        for key, choices in reversed(axes):  # mixed-radix decoding of the index
            index, digit = divmod(index, len(choices))
            point[key] = choices[digit]
        overrides = {
            ("input_resolution" if k == "image_size" else k): list(v) if isinstance(v, tuple) else v
            for k, v in point.items()
        }
        out[variant_name(base, point)] = {"arch": base, **fixed, **overrides}
    return dict(sorted(out.items()))
