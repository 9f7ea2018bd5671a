"""AWP (Wu et al. 2020): PGD-AT whose weights are adversarially perturbed for each update."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.training.modes import eval_mode
from robustlab.training.targets import hard_labels
from robustlab.training.techniques.base import TECHNIQUES, StepOutput
from robustlab.training.techniques.cross_entropy import PGDAdversarialTraining


@TECHNIQUES.register("awp")
@dataclass(frozen=True)
class AdversarialWeightPerturbation(PGDAdversarialTraining):
    """AT-AWP: craft x' by PGD, perturb every trainable weight matrix/kernel w (ndim > 1) by
    ``v = gamma * ||w|| * g / ||g||`` with g the gradient of CE(f(x'), y) (one ascent step of the
    reference's proxy model, whose learning rate cancels), train on f_{w+v}(x'), and remove v
    again after the optimizer step (``after_step``).

    The gradient comes from a copy of the model in the model's own modes, so the real model's
    batch-norm statistics see only the training forward pass, as in the reference. No AWP
    warm-up (the reference's default for AT-AWP).
    """

    gamma: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gamma < 0:
            raise ValueError(f"awp gamma must be >= 0, got {self.gamma}")
        object.__setattr__(self, "_scratch", {"proxy": None, "perturbation": []})

    def _proxy(self, model: nn.Module) -> nn.Module:
        proxy = self._scratch["proxy"]  # type: ignore[attr-defined]
        if proxy is None or type(proxy) is not type(model):
            proxy = copy.deepcopy(model)
            self._scratch["proxy"] = proxy  # type: ignore[attr-defined]
        proxy.load_state_dict(model.state_dict())
        for mine, theirs in zip(proxy.modules(), model.modules(), strict=True):
            mine.training = theirs.training
        return proxy

    def _perturbation(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor):
        proxy = self._proxy(model)
        pairs = [
            (p, q)
            for p, q in zip(model.parameters(), proxy.parameters(), strict=True)
            if p.requires_grad and p.ndim > 1
        ]
        if not pairs:
            return []
        grads = torch.autograd.grad(F.cross_entropy(proxy(x_adv), y), [q for _, q in pairs])
        return [
            (p, self.gamma * p.detach().norm() / (g.norm() + 1e-20) * g)
            for (p, _), g in zip(pairs, grads, strict=True)
        ]

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        with eval_mode(model):
            x_adv = self.attack(model, x, hard_labels(y), self.eps, generator)
        perturbation = self._perturbation(model, x_adv, y)
        with torch.no_grad():
            for param, v in perturbation:
                param.add_(v)
        self._scratch["perturbation"] = perturbation  # type: ignore[attr-defined]
        logits = model(x_adv)
        return StepOutput(F.cross_entropy(logits, y), logits)

    def after_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            for param, v in self._scratch["perturbation"]:  # type: ignore[attr-defined]
                param.sub_(v)
        self._scratch["perturbation"] = []  # type: ignore[attr-defined]
