"""White-box L-inf attacks: FGSM and PGD.

Every attack is built by name with one signature, ``build_attack(name, **params)``, and called as
``attack(model, x, y, eps, generator)``; it returns adversarial inputs inside the eps-ball around
``x`` (L-inf, pixel scale) and inside [0, 1]. The caller puts the model in eval mode.

Written here rather than taken from torchattacks, which cannot be installed beside this torch
build (see the README); the PGD loop is the textbook one (Madry et al.).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.registry import Registry


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip into the L-inf ball of radius eps around x, then into [0, 1]."""
    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)


def _input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method: one step of size eps along the sign of the input gradient."""

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if eps == 0:
            return x.clone()
        grad = _input_gradient(model, x, y)
        return _project(x + eps * grad.sign(), x, eps).detach()


@dataclass(frozen=True)
class PGDLinf:
    """Projected gradient descent on the cross-entropy loss in the L-inf ball.

    ``step_size`` is relative to eps (RobustART: 3/40 x eps with 20 steps). With ``restarts``
    > 1 each example keeps the first restart that fools the model (per-example worst case).
    """

    steps: int = 10
    step_size: float = 0.25
    random_start: bool = True
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1 or self.step_size <= 0:
            raise ValueError(
                f"PGD needs steps >= 1, restarts >= 1, step_size > 0; got {self.steps}, "
                f"{self.restarts}, {self.step_size}"
            )

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if eps == 0:
            return x.clone()
        best = self._run(model, x, y, eps, generator)
        if self.restarts == 1:
            return best.detach()  # no forward pass spent on checking which examples fooled
        with torch.no_grad():
            fooled = model(best).argmax(1) != y
        for _ in range(self.restarts - 1):
            if bool(fooled.all()):
                break
            x_adv = self._run(model, x, y, eps, generator)
            with torch.no_grad():
                now_fooled = model(x_adv).argmax(1) != y
            best[~fooled] = x_adv[~fooled]  # examples already fooled keep their example
            fooled |= now_fooled
        return best.detach()

    def _run(self, model, x, y, eps, generator) -> torch.Tensor:
        start = uniform_start(x, eps, generator) if self.random_start else x.clone()
        return linf_ascent(
            lambda z: F.cross_entropy(model(z), y), x, start, eps, self.steps, self.step_size * eps
        )


def uniform_start(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform random point of the eps-ball around ``x``, clipped to [0, 1] (PGD's start)."""
    noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
    return _project(x + (2 * noise - 1) * eps, x, eps)


def linf_ascent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    start: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float,
) -> torch.Tensor:
    """``steps`` signed-gradient ascent steps of size ``alpha`` on the scalar ``objective``.

    Starts at ``start``; after every step the point is projected into the L-inf ball of radius
    ``eps`` around ``x`` and into [0, 1]. PGD is this loop on the cross-entropy; training
    techniques reuse it with their own objectives (TRADES' KL, CLAT's feature distance).
    """
    x_adv = start
    for _ in range(steps):
        z = x_adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(z), z)
        x_adv = _project(x_adv.detach() + alpha * grad.sign(), x, eps)
    return x_adv


ATTACKS: Registry[type] = Registry("attack")
ATTACKS.register("fgsm")(FGSM)
ATTACKS.register("pgd_linf")(PGDLinf)


def build_attack(name: str, **params):
    """The attack registered as ``name``, configured with ``params``."""
    cls = ATTACKS.get(name)
    try:
        return cls(**params)
    except TypeError as err:
        raise TypeError(f"attack {name!r}: bad parameters {params}: {err}") from None


def attack_names() -> list[str]:
    return ATTACKS.names()
