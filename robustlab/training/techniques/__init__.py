"""Training techniques by name: each turns a batch into the loss to minimise.

Constructor signature: ``build_technique(name, **params)``; call ``technique.loss(model, x, y,
generator)`` -> ``(loss, logits)`` with the model in train mode (the loop calls the richer
``technique.step``, see :class:`Technique`). Adversarial techniques craft their examples with
the evaluation attacks of :mod:`robustlab.noise.adversarial`.

| name | parameters (defaults) |
| --- | --- |
| standard | none |
| pgd_at | eps 0.1, steps 3, step_size 0.5 (x eps), random_start true |
| trades | eps, steps, step_size, random_start as pgd_at; beta 6.0 |
| mart | eps, steps, step_size, random_start as pgd_at; lam 5.0 |
| fast_at | eps 0.1, step_size 1.25 (x eps) |
| awp | eps, steps, step_size, random_start as pgd_at; gamma 0.01 |
"""

from __future__ import annotations

from robustlab.training.techniques import awp, cross_entropy, mart, trades  # noqa: F401
from robustlab.training.techniques.base import TECHNIQUES, StepOutput, Technique
from robustlab.training.techniques.cross_entropy import (
    FastAdversarialTraining,
    PGDAdversarialTraining,
    Standard,
)


def build_technique(name: str, **params) -> Technique:
    """The technique registered as ``name``, configured with ``params``."""
    cls = TECHNIQUES.get(name)
    try:
        return cls(**params)
    except TypeError as err:
        raise TypeError(f"technique {name!r}: bad parameters {params}: {err}") from None


def technique_names() -> list[str]:
    return TECHNIQUES.names()


__all__ = [
    "TECHNIQUES",
    "FastAdversarialTraining",
    "PGDAdversarialTraining",
    "Standard",
    "StepOutput",
    "Technique",
    "build_technique",
    "technique_names",
]
