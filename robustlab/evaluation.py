"""Evaluation in fp32, model in eval mode: clean predictions and predictions under attack."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from robustlab.noise.adversarial.counting import count_passes
from robustlab.noise.adversarial.norms import perturbation_norm


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
    out = []
    with torch.autocast(device.type, enabled=False):
        for s in _batches(len(x), batch_size):
            out.append(model(x[s].to(device).float()).argmax(1).cpu())
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
    """Adversarial examples for every input (on CPU), crafted batch by batch on the model's
    device, in eval mode and fp32 (any surrounding autocast is switched off)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    with torch.autocast(device.type, enabled=False):
        batches = list(_batches(len(x), batch_size))
        for s in tqdm(batches, desc=desc, disable=not progress, leave=False):
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


@dataclass(frozen=True)
class AttackOutcome:
    """One attack at one eps on a set of points (tensors on CPU).

    ``perturbation``: per-example size of ``x_adv - x`` in the attack's norm (float64);
    ``forward``/``backward``: model passes in examples spent crafting (not predicting);
    ``seconds``: wall-clock time of crafting.
    """

    x_adv: torch.Tensor
    prediction: torch.Tensor
    correct: torch.Tensor
    perturbation: torch.Tensor
    forward: int
    backward: int
    seconds: float

    @property
    def robust_accuracy(self) -> float:
        """Percentage of points still classified correctly (NaN without points)."""
        return 100.0 * float(self.correct.float().mean()) if len(self.correct) else float("nan")


def evaluate_attack(
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
) -> AttackOutcome:
    """Craft with :func:`attack_examples`, counting passes and time, then predict."""
    started = time.perf_counter()
    with count_passes(model) as passes:
        x_adv = attack_examples(
            model, x, y, attack, eps, generator, device, batch_size, progress, desc
        )
    seconds = time.perf_counter() - started
    prediction = predict(model, x_adv, device, batch_size)
    return AttackOutcome(
        x_adv=x_adv,
        prediction=prediction,
        correct=prediction == y.cpu(),
        perturbation=perturbation_norm(x_adv, x.cpu(), getattr(attack, "norm", "linf")).cpu(),
        forward=passes.forward,
        backward=passes.backward,
        seconds=seconds,
    )
