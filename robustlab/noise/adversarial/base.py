"""The attack contract, the registry and parameter checks shared by every attack.

``attack(model, x, y, eps, generator=None) -> x_adv``: adversarial inputs inside the eps-ball
of ``attack.norm`` around ``x`` and inside [0, 1]; ``eps == 0`` returns ``x`` unchanged. The
caller puts the model in eval mode. Attacks are frozen dataclasses built by name from keyword
parameters (``build_attack("pgd_linf", steps=20)``); a bad parameter raises an error naming the
attack and the parameter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.registry import Registry

NORMS = ("linf", "l2", "l1")

ATTACKS: Registry[type] = Registry("attack")


class AttackParameterError(ValueError):
    """A parameter value an attack cannot use; the message names the attack and the parameter."""


@dataclass(frozen=True, kw_only=True)
class Attack:
    """Base of every attack: checks ``eps``, returns ``x`` itself at eps 0, else ``_craft``."""

    name: ClassVar[str] = "attack"
    norm: ClassVar[str] = "linf"

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        budget = _budget(self.name, eps)
        x = x.detach()
        if budget == 0 or len(x) == 0:
            return x.clone()
        return self._craft(model, x, y, budget, generator).detach()

    def _craft(self, model, x, y, eps, generator) -> torch.Tensor:
        raise NotImplementedError

    # -- parameter checks, used by the subclasses' __post_init__ -------------------------

    def _fail(self, param: str, requirement: str) -> None:
        value = getattr(self, param)
        raise AttackParameterError(
            f"attack {self.name!r}: parameter {param!r} must be {requirement}, got {value!r}"
        )

    def _integer(self, param: str, minimum: int) -> None:
        value = getattr(self, param)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._fail(param, f"an integer >= {minimum}")

    def _positive(self, param: str, maximum: float = math.inf) -> None:
        value = getattr(self, param)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (0 < value <= maximum):
            bound = "" if maximum == math.inf else f" and <= {maximum:g}"
            self._fail(param, f"a number > 0{bound}")

    def _flag(self, param: str) -> None:
        if not isinstance(getattr(self, param), bool):
            self._fail(param, "true or false")

    def _choice(self, param: str, choices: tuple[str, ...]) -> None:
        if getattr(self, param) not in choices:
            self._fail(param, f"one of {', '.join(choices)}")


@dataclass(frozen=True, kw_only=True)
class WhiteBoxAttack(Attack):
    """An attack of ours with the ``skip_misclassified`` shortcut.

    With ``skip_misclassified`` one clean forward pass finds the points the model already
    misclassifies; they are returned unperturbed (``x`` is then a valid worst case: it is
    inside every budget and already fools the model) and only the others are attacked.
    """

    skip_misclassified: bool = False

    def __post_init__(self) -> None:
        self._flag("skip_misclassified")

    def _rows_to_attack(self, model: nn.Module, x, y) -> torch.Tensor | None:
        """Positions of the clean-correct points with ``skip_misclassified``, else None (all)."""
        if not self.skip_misclassified:
            return None
        with torch.no_grad():
            return (model(x).argmax(1) == y).nonzero().squeeze(1)

    def _craft(self, model, x, y, eps, generator) -> torch.Tensor:
        keep = self._rows_to_attack(model, x, y)
        if keep is None:
            return self.perturb(model, x, y, eps, generator, len(x))
        out = x.clone()
        if keep.numel():
            x_adv = self.perturb(model, x[keep], y[keep], eps, generator, len(x))
            out[keep] = x_adv.to(out.dtype)
        return out

    def perturb(self, model, x, y, eps, generator, count: int) -> torch.Tensor:
        """Adversarial examples for every point of ``(x, y)`` (eps > 0); ``count`` is the size
        of the batch the attack was called on (the losses' normaliser, see ``losses``)."""
        raise NotImplementedError


def _budget(name: str, eps: Any) -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise AttackParameterError(
            f"attack {name!r}: eps must be a finite number >= 0, got {eps!r}"
        )
    return value


def parameter_names(cls: type) -> list[str]:
    """The keyword parameters an attack class accepts."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def build_attack(name: str, **params: Any) -> Attack:
    """The attack registered as ``name``, configured with ``params``.

    An unknown name raises :class:`~robustlab.registry.UnknownNameError` listing the known
    attacks; an unknown parameter a ``TypeError`` and a bad value an
    :class:`AttackParameterError`, both naming the attack and the parameter.
    """
    cls = ATTACKS.get(name)
    known = parameter_names(cls)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TypeError(
            f"attack {name!r}: unknown parameter {unknown[0]!r}; known: {', '.join(known)}"
        )
    return cls(**params)


def attack_names() -> list[str]:
    """Registered attack names, sorted."""
    return ATTACKS.names()
