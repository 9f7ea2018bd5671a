"""Evaluation in fp32, model in eval mode: clean predictions and predictions under attack."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Top-1 predictions (int64, on CPU) for images in [0, 1]."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model(x[s].to(device).float()).argmax(1).cpu() for s in _batches(len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def attack_examples(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    eps: float,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    batch_size: int = 500,
    progress: bool = False,
    desc: str = "attack",
) -> torch.Tensor:
    """Adversarial examples for every input (on CPU), crafted batch by batch in eval mode, fp32."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for s in tqdm(list(_batches(len(x), batch_size)), desc=desc, disable=not progress, leave=False):
        xb, yb = x[s].to(device).float(), y[s].to(device)
        out.append(attack(model, xb, yb, eps, generator).detach().cpu())
    return torch.cat(out) if out else x.clone()


def robust_predict(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    eps: float,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Predictions on the attack's adversarial examples."""
    x_adv = attack_examples(model, x, y, attack, eps, generator, device, batch_size)
    return predict(model, x_adv, device, batch_size)
