"""Feature weakness (CLAT, Eq. 5), layer criticality (Eq. 6) and the layer selection.

W_i = (1 / N_i) * mean over the batch of ||F_i(x + delta) - F_i(x)||_2, with N_i the number of
features of layer i (per example) and delta one untargeted PGD perturbation against the model's
output, shared by all layers; C_1 = W_1 and C_i = W_i / W_{i-1}. One measurement costs one PGD
attack and two forward passes (clean, perturbed) with hooks on every
candidate layer, in fp32, eval mode; W_{i-1} is the weakness of the previous candidate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robustlab.noise.adversarial import PGDLinf
from robustlab.training.clat.layers import FeatureTap
from robustlab.training.modes import eval_mode

SELECTIONS = ("dynamic", "static", "random")


def feature_distances(clean: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norms ||F(x + delta) - F(x)||_2 (shape N), in fp32."""
    return torch.linalg.vector_norm((perturbed.float() - clean.float()).flatten(1), dim=1)


def feature_weakness(
    clean: Sequence[torch.Tensor], perturbed: Sequence[torch.Tensor]
) -> list[float]:
    """Eq. 5 for each layer: batch mean of the feature distance divided by the feature count."""
    return [
        float(feature_distances(c, p).mean()) / c[0].numel()
        for c, p in zip(clean, perturbed, strict=True)
    ]


def criticality_indices(weakness: Sequence[float]) -> list[float]:
    """Eq. 6: C_1 = W_1, C_i = W_i / W_{i-1} (inf when W_{i-1} = 0 < W_i, 0 when both are 0)."""
    out: list[float] = []
    for i, w in enumerate(weakness):
        prev = weakness[i - 1] if i > 0 else 1.0
        out.append(w / prev if prev > 0 else (math.inf if w > 0 else 0.0))
    return out


def measure_criticality(
    model: nn.Module,
    layers: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
) -> tuple[list[float], list[float]]:
    """(weakness, criticality) of every layer on the batch ``(x, y)``: one PGD-Linf attack
    (``step_size`` relative to eps, random start) and two forward passes."""
    with eval_mode(model):
        attack = PGDLinf(steps=steps, step_size=step_size, random_start=True)
        x_adv = attack(model, x, y, eps, generator)
        with torch.no_grad(), FeatureTap(layers) as tap:
            model(x)
            clean = tap.features()
            model(x_adv)
            perturbed = tap.features()
    weakness = feature_weakness(clean, perturbed)
    return weakness, criticality_indices(weakness)


def layer_count(k: float, n_layers: int) -> int:
    """k >= 1: that many layers (an integer); 0 < k < 1: that fraction of the layers rounded
    up, at least one. Rounding up reproduces CLAT's counts for "approximately 5% of layers" on
    main-path convolutions: RN18 (17) 1, VGG19 (16) 1, WRN34-10 (33) 2, RN50 (49) 3,
    WRN70-16 (69) 4 (DN121, 120 convolutions, gives 6 where the paper uses 5)."""
    if k >= 1:
        if k != int(k):
            raise ValueError(f"k = {k}: give a whole number of layers or a fraction below 1")
        count = int(k)
    elif k > 0:
        count = max(1, math.ceil(k * n_layers - 1e-9))
    else:
        raise ValueError(f"k must be positive, got {k}")
    if count > n_layers:
        raise ValueError(f"k = {k} asks for {count} layers but the model has {n_layers}")
    return count


def eligible_layers(layers: Sequence, model: nn.Module, max_share: float) -> list[int]:
    """0-based positions of the candidate ``layers`` (each with a ``params`` count) holding at
    most ``max_share`` of ``model``'s parameters: the layers CLAT may fine-tune.

    The paper's models are deep enough that one layer is a few percent of the weights (Table 6:
    WRN34-10 trains 1.24M of 46.16M); in a 10-layer network one convolution can hold 40 %, so
    without this cap CLAT would stop being a fine-tuning of a small part of the model."""
    if not 0 < max_share <= 1:
        raise ValueError(f"max_trainable_share must be in (0, 1], got {max_share}")
    total = sum(p.numel() for p in model.parameters())
    eligible = [i for i, layer in enumerate(layers) if layer.params <= max_share * total]
    if not eligible:
        smallest = min(layer.params for layer in layers)
        raise ValueError(
            f"no candidate layer holds at most {max_share:.0%} of the model's {total} "
            f"parameters (the smallest has {smallest}); raise max_trainable_share"
        )
    return eligible


def top_k(
    criticality: Sequence[float], count: int, eligible: Sequence[int] | None = None
) -> list[int]:
    """0-based positions of the ``count`` largest indices among ``eligible`` positions (all by
    default), largest first (ties: earlier layer)."""
    pool = range(len(criticality)) if eligible is None else eligible
    ranked = sorted(pool, key=lambda i: (-criticality[i], i))
    return ranked[:count]


def select_layers(
    mode: str,
    criticality: Sequence[float],
    count: int,
    previous: Sequence[int] | None,
    generator: torch.Generator | None = None,
    eligible: Sequence[int] | None = None,
) -> list[int]:
    """0-based positions of the layers to fine-tune, drawn from ``eligible`` (default: all).

    dynamic: the top ``count`` by criticality, every time; static: the first selection is kept;
    random: ``count`` layers drawn uniformly (by ``generator``) every time, in forward order.
    """
    if mode not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, not {mode!r}")
    pool = list(range(len(criticality)) if eligible is None else eligible)
    if mode == "static" and previous is not None:
        return list(previous)
    if mode == "random":
        drawn = torch.randperm(len(pool), generator=generator)[:count]
        return sorted(pool[int(i)] for i in drawn)
    return top_k(criticality, count, pool)
