"""Cross-entropy techniques: standard training, PGD-AT (Madry) and fast AT (Wong et al.)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial import PGDLinf
from robustlab.training.modes import eval_mode
from robustlab.training.targets import hard_labels
from robustlab.training.techniques.base import TECHNIQUES, AttackBudget, StepOutput, Technique


@TECHNIQUES.register("standard")
@dataclass(frozen=True)
class Standard(Technique):
    """Empirical risk minimisation: cross-entropy on clean inputs."""

    computes_clean_logits = True

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y), logits, logits)


@TECHNIQUES.register("pgd_at")
@dataclass(frozen=True)
class PGDAdversarialTraining(AttackBudget, Technique):
    """Madry et al.'s PGD adversarial training (SAT): cross-entropy on PGD-Linf examples.

    Examples are crafted by the evaluation attack :class:`PGDLinf` with the model in eval mode
    (batch-norm statistics are not updated by the attack's forward passes).
    """

    adversarial = True

    @property
    def attack(self) -> PGDLinf:
        return PGDLinf(steps=self.steps, step_size=self.step_size, random_start=self.random_start)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        with eval_mode(model):
            x_adv = self.attack(model, x, hard_labels(y), self.eps, generator)
        logits = model(x_adv)
        return StepOutput(F.cross_entropy(logits, y), logits)


@TECHNIQUES.register("fast_at")
@dataclass(frozen=True)
class FastAdversarialTraining(Technique):
    """Wong et al.'s fast AT: one FGSM step of ``step_size`` x eps (default 1.25) from a uniform
    random start in the eps-ball, i.e. :class:`PGDLinf` with one step."""

    adversarial = True
    eps: float = 0.1
    step_size: float = 1.25

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 1 or self.step_size <= 0:
            raise ValueError(
                f"fast_at needs eps in (0, 1] and step_size > 0; got {self.eps}, {self.step_size}"
            )

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        attack = PGDLinf(steps=1, step_size=self.step_size, random_start=True)
        with eval_mode(model):
            x_adv = attack(model, x, hard_labels(y), self.eps, generator)
        logits = model(x_adv)
        return StepOutput(F.cross_entropy(logits, y), logits)
