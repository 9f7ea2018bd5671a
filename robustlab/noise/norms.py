"""Perturbation sizes in the norms attack budgets are defined in (pixel scale, per example)."""

from __future__ import annotations

import torch

NORMS = ("linf", "l2", "l1")


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example size of ``x_adv - x`` in ``norm`` (linf, l2 or l1), as float64 on CPU."""
    delta = (x_adv.detach().double() - x.detach().double()).flatten(1)
    if norm == "linf":
        sizes = delta.abs().amax(1) if delta.shape[1] else torch.zeros(len(delta))
    elif norm == "l2":
        sizes = delta.norm(p=2, dim=1)
    elif norm == "l1":
        sizes = delta.abs().sum(1)
    else:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}")
    return sizes.cpu()
