"""Projected gradient ascent attacks: PGD in L-inf, L2 and L1, CW-Linf and MIM; and FGSM.

``step_size`` is relative to eps everywhere (RobustART: 3/40 x eps with 20 steps). Restarts
keep, per example, the first restart that fools the model, else the restart with the highest
loss; only examples not yet fooled are attacked again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustlab.noise.adversarial.ascent import (
    MomentumStep,
    SparseL1Step,
    Step,
    gradient_ascent,
    l2_step,
    sign_step,
)
from robustlab.noise.adversarial.base import ATTACKS, WhiteBoxAttack
from robustlab.noise.adversarial.losses import LOSSES, batch_objective, cross_entropy
from robustlab.noise.adversarial.norms import (
    PROJECTIONS,
    enforce_budget,
    project_linf,
    random_in_ball,
)


@ATTACKS.register("fgsm")
@dataclass(frozen=True, kw_only=True)
class FGSM(WhiteBoxAttack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of eps along the sign of
    the cross-entropy's input gradient."""

    name = "fgsm"
    norm = "linf"

    def perturb(self, model, x, y, eps, generator, count) -> torch.Tensor:
        z = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(batch_objective(cross_entropy, model(z), y, count), z)
        return project_linf(x + eps * grad.sign(), x, eps)


@dataclass(frozen=True, kw_only=True)
class PGD(WhiteBoxAttack):
    """Shared loop of the PGD family; subclasses fix the norm and the default parameters.

    ``early_stop``: each example keeps its first iterate that fools the model and stops being
    updated (stronger and cheaper than the textbook loop, which may walk out of a fooling
    region again); off by default, so training techniques get the textbook loop.
    """

    steps: int = 10
    step_size: float = 0.25
    random_start: bool = True
    restarts: int = 1
    early_stop: bool = False
    loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._integer("steps", 1)
        self._positive("step_size")
        self._flag("random_start")
        self._integer("restarts", 1)
        self._flag("early_stop")
        self._choice("loss", tuple(LOSSES))
        if self.restarts > 1 and not self.random_start:
            self._fail("restarts", "1 without random_start (restarts from x repeat one run)")

    def _step(self, x: torch.Tensor) -> Step:
        raise NotImplementedError

    def _start(self, x: torch.Tensor, eps: float, generator) -> torch.Tensor:
        return random_in_ball(x, eps, self.norm, generator) if self.random_start else x.clone()

    def _run(self, model: nn.Module, x, y, start, eps: float, count: int) -> torch.Tensor:
        """One attack run from ``start``; ``count`` normalises the loss (see ``losses``)."""
        x_adv = gradient_ascent(
            model,
            x,
            y,
            start,
            eps,
            self.steps,
            self.step_size * eps,
            LOSSES[self.loss],
            self._step(x),
            PROJECTIONS[self.norm],
            self.early_stop,
            count,
        )
        if self.norm != "linf":  # float rounding may leave an L1/L2 size a few ulps over eps
            x_adv = enforce_budget(x_adv.detach(), x, eps, self.norm)
        return x_adv.detach()

    def _craft(self, model, x, y, eps, generator) -> torch.Tensor:
        """Every restart draws its start for the whole batch, so an example's start does not
        depend on which other examples are skipped, fooled or still attacked."""
        todo = self._rows_to_attack(model, x, y)
        if todo is None and self.restarts == 1:  # the textbook loop, nothing else
            return self._run(model, x, y, self._start(x, eps, generator), eps, len(x))
        if todo is None:
            todo = torch.arange(len(x), device=x.device)
        best = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        score = torch.full((len(x),), float("-inf"), device=x.device)
        per_example = LOSSES[self.loss]
        for restart in range(self.restarts):
            start = self._start(x, eps, generator)
            if todo.numel() == 0:
                continue  # keep drawing: the generator ends in the same state either way
            candidate = self._run(model, x[todo], y[todo], start[todo], eps, len(x))
            if self.restarts == 1:
                best[todo] = candidate
                break  # no forward pass spent on checking which examples fooled
            with torch.no_grad():
                logits = model(candidate)
                now_fooled = logits.argmax(1) != y[todo]
                now_score = per_example(logits, y[todo]).to(score.dtype)
            better = now_fooled | (now_score > score[todo]) | (restart == 0)
            rows = todo[better]
            best[rows] = candidate[better]
            score[rows] = now_score[better]
            fooled[rows] = now_fooled[better]
            todo = todo[~fooled[todo]]
        return best


@ATTACKS.register("pgd_linf")
@dataclass(frozen=True, kw_only=True)
class PGDLinf(PGD):
    """PGD in the L-inf ball (Madry et al. 2018) on the cross-entropy: signed-gradient steps
    of ``step_size`` x eps from a uniform random start (or from x)."""

    name = "pgd_linf"
    norm = "linf"

    def _step(self, x: torch.Tensor) -> Step:
        return sign_step


@ATTACKS.register("cw_linf")
@dataclass(frozen=True, kw_only=True)
class CWLinf(PGDLinf):
    """PGD-Linf on the Carlini-Wagner margin ``max_{j != y} z_j - z_y`` (RobustResNet's CW-40:
    40 steps)."""

    name = "cw_linf"
    steps: int = 40
    step_size: float = 0.1
    loss: str = "cw"


@ATTACKS.register("mim")
@dataclass(frozen=True, kw_only=True)
class MIM(PGD):
    """Momentum iterative FGSM (Dong et al. 2018): the gradient, divided by its L1 norm, is
    accumulated with ``decay``; each step moves ``step_size`` x eps along the sign of the
    accumulated gradient. ``step_size`` None means 1 / steps (MI-FGSM's eps / T)."""

    name = "mim"
    norm = "linf"
    steps: int = 20
    step_size: float | None = None
    decay: float = 1.0

    def __post_init__(self) -> None:
        if self.step_size is None:
            steps_ok = isinstance(self.steps, int) and self.steps > 0
            object.__setattr__(self, "step_size", 1.0 / self.steps if steps_ok else 1.0)
        super().__post_init__()
        value = self.decay
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self._fail("decay", "a number >= 0")

    def _step(self, x: torch.Tensor) -> Step:
        return MomentumStep(float(self.decay), len(x), x)


@ATTACKS.register("pgd_l2")
@dataclass(frozen=True, kw_only=True)
class PGDL2(PGD):
    """PGD in the L2 ball: steps of ``step_size`` x eps along the L2-normalised gradient from
    a uniform random point of the ball (or from x); RobustART: 20 steps of 3/40 x eps."""

    name = "pgd_l2"
    norm = "l2"
    steps: int = 20
    step_size: float = 0.075

    def _step(self, x: torch.Tensor) -> Step:
        return l2_step


@ATTACKS.register("pgd_l1")
@dataclass(frozen=True, kw_only=True)
class PGDL1(PGD):
    """PGD in the L1 ball with SLIDE's sparse steepest-ascent step (Tramer & Boneh 2019): only
    the coordinates with the largest |gradient| (top ``1 - sparsity`` share) move, the box
    [0, 1] is respected; projection onto the L1 ball (Duchi et al. 2008) then the box.
    Starts at x by default (as SLIDE)."""

    name = "pgd_l1"
    norm = "l1"
    steps: int = 20
    step_size: float = 0.075
    random_start: bool = False
    sparsity: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.sparsity
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            self._fail("sparsity", "a number in [0, 1)")

    def _step(self, x: torch.Tensor) -> Step:
        return SparseL1Step(float(self.sparsity))
