"""Training techniques by name: each turns a batch into the loss to minimise.

Constructor signature: ``build_technique(name, **params)``; call ``technique.loss(model, x, y,
generator)`` -> ``(loss, logits)`` with the model in train mode. Adversarial techniques craft their
examples with the evaluation attacks of :mod:`robustlab.noise.adversarial`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial import PGDLinf
from robustlab.registry import Registry

TECHNIQUES: Registry[type] = Registry("technique")


@TECHNIQUES.register("standard")
@dataclass(frozen=True)
class Standard:
    """Empirical risk minimisation: cross-entropy on clean inputs."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        logits = model(x)
        return F.cross_entropy(logits, y), logits


@TECHNIQUES.register("pgd_at")
@dataclass(frozen=True)
class PGDAdversarialTraining:
    """Madry et al.'s PGD adversarial training (SAT): cross-entropy on PGD-Linf examples.

    Examples are crafted with the model in eval mode (batch-norm statistics are not updated by
    the attack's forward passes), then the model returns to train mode for the update.
    ``step_size`` is relative to ``eps``.
    """

    eps: float = 0.1
    steps: int = 3
    step_size: float = 0.5
    random_start: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 1:
            raise ValueError(f"pgd_at eps must be in (0, 1] (pixel scale), got {self.eps}")

    @property
    def attack(self) -> PGDLinf:
        return PGDLinf(steps=self.steps, step_size=self.step_size, random_start=self.random_start)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        model.eval()
        x_adv = self.attack(model, x, y, self.eps, generator)
        model.train()
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits


def build_technique(name: str, **params):
    """The technique registered as ``name``, configured with ``params``."""
    cls = TECHNIQUES.get(name)
    try:
        return cls(**params)
    except TypeError as err:
        raise TypeError(f"technique {name!r}: bad parameters {params}: {err}") from None


def technique_names() -> list[str]:
    return TECHNIQUES.names()
