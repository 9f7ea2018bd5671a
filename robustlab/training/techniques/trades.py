"""TRADES (Zhang et al. 2019): clean cross-entropy plus beta x KL(clean || adversarial)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial import linf_ascent
from robustlab.training.modes import eval_mode
from robustlab.training.techniques.base import (
    TECHNIQUES,
    AttackBudget,
    StepOutput,
    Technique,
    normal_start,
)


@TECHNIQUES.register("trades")
@dataclass(frozen=True)
class TRADES(AttackBudget, Technique):
    """loss = CE(f(x), y) + beta * KL(softmax f(x) || softmax f(x')) / batch.

    Inner maximisation (eval mode): signed-gradient ascent on the summed KL between the clean
    prediction (fixed) and the prediction at x', from x + 0.001 N(0, 1) (``random_start``; from
    x itself the KL gradient is zero), projected after each step — the PGD loop of
    :func:`robustlab.noise.adversarial.linf_ascent`.
    """

    adversarial = True
    computes_clean_logits = True
    beta: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise ValueError(f"trades beta must be >= 0, got {self.beta}")

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        with eval_mode(model):
            with torch.no_grad():
                p_clean = F.softmax(model(x).float(), dim=1)

            def kl(z: torch.Tensor) -> torch.Tensor:
                log_p = F.log_softmax(model(z).float(), dim=1)
                return F.kl_div(log_p, p_clean, reduction="sum")

            start = normal_start(x, generator) if self.random_start else x.clone()
            x_adv = linf_ascent(kl, x, start, self.eps, self.steps, self.step_size * self.eps)
        logits = model(x)
        logits_adv = model(x_adv.detach())
        natural = F.cross_entropy(logits, y)
        robust = F.kl_div(
            F.log_softmax(logits_adv.float(), dim=1),
            F.softmax(logits.float(), dim=1),
            reduction="batchmean",
        )
        return StepOutput(natural + self.beta * robust, logits_adv, logits)
