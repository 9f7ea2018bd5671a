"""MART (Wang et al. 2020): boosted cross-entropy plus a KL term weighted by 1 - p_y(x)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial import linf_ascent
from robustlab.training.modes import eval_mode
from robustlab.training.targets import hard_labels
from robustlab.training.techniques.base import (
    TECHNIQUES,
    AttackBudget,
    StepOutput,
    Technique,
    normal_start,
)


@TECHNIQUES.register("mart")
@dataclass(frozen=True)
class MART(AttackBudget, Technique):
    """loss = BCE(x', y) + lam * mean_i KL(p(x_i) || p(x'_i)) * (1 - p_y(x_i)).

    BCE(x', y) = CE(f(x'), y) - log(1.0001 - max_{k != y} p_k(x')) (the boosted cross-entropy;
    the constants 1.0001, 1e-12 and 1.0000001 guard the logarithms as in the reference code).
    x' is PGD on the cross-entropy from x + 0.001 N(0, 1) (eval mode). With soft targets (label
    smoothing, mixup) the CE term uses them; the margin and the weight use their labels.
    """

    adversarial = True
    computes_clean_logits = True
    lam: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam < 0:
            raise ValueError(f"mart lam must be >= 0, got {self.lam}")

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        labels = hard_labels(y)
        with eval_mode(model):
            start = normal_start(x, generator) if self.random_start else x.clone()
            x_adv = linf_ascent(
                lambda z: F.cross_entropy(model(z), labels),
                x,
                start,
                self.eps,
                self.steps,
                self.step_size * self.eps,
            )
        logits = model(x)
        logits_adv = model(x_adv.detach())
        p_adv = F.softmax(logits_adv.float(), dim=1)
        p_clean = F.softmax(logits.float(), dim=1)
        is_label = F.one_hot(labels, p_adv.shape[1]).bool()
        runner_up = p_adv.masked_fill(is_label, -1.0).argmax(dim=1)
        boosted = F.cross_entropy(logits_adv, y) + F.nll_loss(
            torch.log(1.0001 - p_adv + 1e-12), runner_up
        )
        kl = (torch.xlogy(p_clean, p_clean) - p_clean * torch.log(p_adv + 1e-12)).sum(dim=1)
        p_true = p_clean.gather(1, labels[:, None]).squeeze(1)
        robust = (kl * (1.0000001 - p_true)).mean()
        return StepOutput(boosted + self.lam * robust, logits_adv, logits)
