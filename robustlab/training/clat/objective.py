"""CLAT's training objective (CLAT, Eq. 8-9) as a training technique."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial import linf_ascent, uniform_start
from robustlab.training.clat.criticality import feature_distances
from robustlab.training.clat.layers import FeatureTap
from robustlab.training.modes import eval_mode
from robustlab.training.techniques.base import StepOutput, Technique


class ClatObjective(Technique):
    """loss = CE(F(x), y) + lam * mean_x sum_{i in S} ||F_i(x + delta*) - F_i(x)||_2.

    delta* maximises the summed feature distance of the selected layers S in the eps-ball:
    signed-gradient ascent from a uniform random start (:func:`linf_ascent`, the PGD loop of
    the evaluation attacks), against the clean features of an eval-mode pass; ``steps`` = 1
    and ``step_size`` = 1.25 give FGSM-RS ("CLAT (fast)"). The update's gradient flows through
    both feature maps; only S's parameters are trainable (the caller freezes the rest).
    """

    adversarial = True
    computes_clean_logits = True

    def __init__(
        self,
        layers: Sequence[nn.Module],
        lam: float,
        eps: float,
        steps: int,
        step_size: float,
    ) -> None:
        self.layers = list(layers)
        self.lam, self.eps, self.steps, self.step_size = lam, eps, steps, step_size

    def config(self) -> dict:
        return {"lam": self.lam, "eps": self.eps, "steps": self.steps, "step_size": self.step_size}

    def _distance(self, clean: Sequence[torch.Tensor], perturbed: Sequence[torch.Tensor]):
        """Per-example sum over the selected layers of the feature distances (shape N)."""
        return sum(feature_distances(c, p) for c, p in zip(clean, perturbed, strict=True))  # type: ignore[return-value]

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        with FeatureTap(self.layers) as tap:
            with eval_mode(model):
                with torch.no_grad():
                    model(x)
                    reference = [f.detach() for f in tap.features()]

                def objective(z: torch.Tensor) -> torch.Tensor:
                    model(z)
                    return self._distance(reference, tap.features()).sum()

                start = uniform_start(x, self.eps, generator)
                alpha = self.step_size * self.eps
                x_adv = linf_ascent(objective, x, start, self.eps, self.steps, alpha).detach()
            logits = model(x)
            clean = tap.features()
            logits_adv = model(x_adv)
            perturbed = tap.features()
        feature_term = self._distance(clean, perturbed).mean()
        loss = F.cross_entropy(logits, y) + self.lam * feature_term
        return StepOutput(loss, logits_adv, logits)
