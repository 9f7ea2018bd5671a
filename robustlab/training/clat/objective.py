"""CLAT's training objective (CLAT, Eq. 8-9) as a training technique, and the calibration of
its weight lambda."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial import linf_ascent, uniform_start
from robustlab.training.clat.criticality import feature_distances
from robustlab.training.clat.layers import FeatureTap
from robustlab.training.modes import eval_mode
from robustlab.training.techniques.base import StepOutput, Technique


def layer_distances(
    clean: Sequence[torch.Tensor], perturbed: Sequence[torch.Tensor], relative: bool = False
) -> torch.Tensor:
    """Per-example sum over the layers of ||F_i(x + delta) - F_i(x)||_2 (shape N); with
    ``relative`` each term is divided by ||F_i(x)||_2 (a constant scale: no gradient flows
    through the divisor)."""
    total = None
    for c, p in zip(clean, perturbed, strict=True):
        term = feature_distances(c, p)
        if relative:
            norm = torch.linalg.vector_norm(c.detach().float().flatten(1), dim=1)
            term = term / norm.clamp_min(1e-12)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("CLAT needs at least one selected layer")
    return total


class ClatObjective(Technique):
    """loss = CE(F(x), y) + lam * L_C, L_C = mean_x sum_{i in S} ||F_i(x + delta*) - F_i(x)||_2.

    delta* maximises the summed feature distance of the selected layers S in the eps-ball:
    signed-gradient ascent from a uniform random start (:func:`linf_ascent`, the PGD loop of
    the evaluation attacks), against the clean features of an eval-mode pass; ``steps`` = 1
    and ``step_size`` = 1.25 give FGSM-RS ("CLAT (fast)"). The update's gradient flows through
    both feature maps; only S's parameters are trainable (the caller freezes the rest).
    Variants: ``ce_on="adversarial"`` takes the CE on x + delta*; ``feature_loss="relative"``
    divides each layer's distance by its clean feature norm (inner maximisation and loss).

    ``layers`` may be replaced between epochs (reselection). The batch means of CE and L_C
    are summed over the steps; :meth:`take_terms` returns their epoch means and resets them.
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
        ce_on: str = "clean",
        feature_loss: str = "raw",
    ) -> None:
        self.layers = list(layers)
        self.lam, self.eps, self.steps, self.step_size = lam, eps, steps, step_size
        self.ce_on, self.feature_loss = ce_on, feature_loss
        self._sums = {"ce": 0.0, "feature": 0.0}
        self._seen = 0

    def config(self) -> dict:
        return {
            "lam": self.lam,
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            "ce_on": self.ce_on,
            "feature_loss": self.feature_loss,
        }

    def _distance(self, clean: Sequence[torch.Tensor], perturbed: Sequence[torch.Tensor]):
        return layer_distances(clean, perturbed, self.feature_loss == "relative")

    def perturb(self, model: nn.Module, x: torch.Tensor, generator=None) -> torch.Tensor:
        """delta* of Eq. 8 (as x + delta*), found in eval mode against the clean features."""
        with FeatureTap(self.layers) as tap, eval_mode(model):
            with torch.no_grad():
                model(x)
                reference = [f.detach() for f in tap.features()]

            def objective(z: torch.Tensor) -> torch.Tensor:
                model(z)
                return self._distance(reference, tap.features()).sum()

            start = uniform_start(x, self.eps, generator)
            alpha = self.step_size * self.eps
            return linf_ascent(objective, x, start, self.eps, self.steps, alpha).detach()

    def terms(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(CE, L_C, clean logits, perturbed logits) on one batch, in the model's mode."""
        with FeatureTap(self.layers) as tap:
            logits = model(x)
            clean = tap.features()
            logits_adv = model(x_adv)
            perturbed = tap.features()
        feature_term = self._distance(clean, perturbed).mean()
        ce = F.cross_entropy(logits_adv if self.ce_on == "adversarial" else logits, y)
        return ce, feature_term, logits, logits_adv

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        x_adv = self.perturb(model, x, generator)
        ce, feature_term, logits, logits_adv = self.terms(model, x, y, x_adv)
        n = len(x)
        self._sums["ce"] += float(ce.detach()) * n
        self._sums["feature"] += float(feature_term.detach()) * n
        self._seen += n
        return StepOutput(ce + self.lam * feature_term, logits_adv, logits)

    def take_terms(self) -> dict[str, float]:
        """Means over the examples since the last call: ``train_ce``, ``train_feature_loss``
        (L_C) and ``train_weighted_feature_loss`` (lam * L_C); NaN when no step ran."""
        seen = self._seen
        ce = self._sums["ce"] / seen if seen else math.nan
        feature = self._sums["feature"] / seen if seen else math.nan
        self._sums = {"ce": 0.0, "feature": 0.0}
        self._seen = 0
        return {
            "train_ce": ce,
            "train_feature_loss": feature,
            "train_weighted_feature_loss": self.lam * feature,
        }


def calibrate_lambda(
    objective: ClatObjective,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[float, float, float]:
    """(lam, CE, L_C) with lam = CE / L_C on the batch ``(x, y)``, so that lam * L_C equals the
    cross-entropy at CLAT's start; measured in eval mode, fp32 (``lam: auto``)."""
    x_adv = objective.perturb(model, x, generator)
    with torch.no_grad(), eval_mode(model):
        ce, feature_term, _, _ = objective.terms(model, x, y, x_adv)
    ce_value, feature_value = float(ce), float(feature_term)
    if not feature_value > 0 or not math.isfinite(feature_value):
        raise ValueError(
            f"lam: auto needs a positive feature loss at CLAT's start, got L_C = "
            f"{feature_value}; give clat lam a number instead"
        )
    return ce_value / feature_value, ce_value, feature_value
