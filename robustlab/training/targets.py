"""Training targets: label smoothing, mixup and cutmix.

A technique receives ``y`` either as int64 labels (N,) or as a target distribution (N, C);
:func:`torch.nn.functional.cross_entropy` accepts both, and :func:`hard_labels` gives the labels
an attack or an accuracy needs. All randomness comes from the epoch's generator, so a resumed
run mixes exactly as an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from robustlab.training.config import TrainConfig


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Labels of int targets as they are; of a target distribution, its most likely class."""
    return y if y.ndim == 1 else y.argmax(1)


def smooth_one_hot(y: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """(1 - smoothing) on the label plus smoothing / C on every class (PyTorch's convention)."""
    return F.one_hot(y, num_classes).float() * (1.0 - smoothing) + smoothing / num_classes


def beta_sample(alpha: float, generator: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw whose randomness comes from ``generator``."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(
    x: torch.Tensor, generator: torch.Generator, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al.): ``lam * x + (1 - lam) * x[perm]``; returns (x, perm, lam)."""
    lam = beta_sample(alpha, generator)
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    return lam * x + (1.0 - lam) * x[perm], perm, lam


def cutmix(
    x: torch.Tensor, generator: torch.Generator, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix (Yun et al.): paste a box of ``x[perm]`` whose area is about ``1 - lam``.

    The box centre is uniform over the image and the box is clipped at the border; the returned
    ``lam`` is the share of pixels left from ``x``.
    """
    lam = beta_sample(alpha, generator)
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    h, w = x.shape[-2:]
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return mixed, perm, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def training_targets(
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    num_classes: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of one step: ``(x, y)`` unchanged when no modifier is on, else the
    (mixed) inputs with a target distribution that includes label smoothing."""
    if not config.mixes:
        if config.label_smoothing == 0:
            return x, y
        return x, smooth_one_hot(y, num_classes, config.label_smoothing)
    use_cutmix = config.cutmix_alpha > 0
    if config.mixup_alpha > 0 and config.cutmix_alpha > 0:
        use_cutmix = bool(torch.rand(1, generator=generator) < 0.5)
    if use_cutmix:
        mixed, perm, lam = cutmix(x, generator, config.cutmix_alpha)
    else:
        mixed, perm, lam = mixup(x, generator, config.mixup_alpha)
    target = smooth_one_hot(y, num_classes, config.label_smoothing)
    return mixed, lam * target + (1.0 - lam) * target[perm]
