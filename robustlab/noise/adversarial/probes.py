"""Model-level sanity probes of an honest robustness evaluation (docs/attacks.md, "Sanity probes").

Each probe returns a :class:`ProbeResult`: pass/fail with the measured number behind it.
``bool(result)`` is the verdict and ``float(result)`` the number. Models are probed as given:
the caller puts them in eval mode; everything runs in fp32 on the inputs' device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustlab.noise.adversarial.norms import random_in_ball


@dataclass(frozen=True)
class ProbeResult:
    """One probe's verdict (``passed``), its measured ``value``, the ``n`` examples behind it
    and a one-line ``detail``."""

    name: str
    passed: bool
    value: float
    n: int
    detail: str

    def __bool__(self) -> bool:
        return self.passed

    def __float__(self) -> float:
        return self.value

    def as_row(self) -> dict:
        return asdict(self)


def _fp32(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float()


def input_gradient_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> ProbeResult:
    """Share (0-1) of examples whose cross-entropy input gradient is exactly zero everywhere
    (gradient masking starves gradient attacks); passes when no example has one."""
    z = _fp32(x).requires_grad_(True)
    with torch.autocast(z.device.type, enabled=False):
        loss = F.cross_entropy(model(z), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, z)
    zero = (grad.flatten(1) == 0).all(1)
    share = float(zero.float().mean()) if len(zero) else 0.0
    return ProbeResult(
        "zero_input_gradients",
        share == 0.0,
        share,
        len(zero),
        f"{int(zero.sum())} of {len(zero)} examples have an all-zero input gradient",
    )


@torch.no_grad()
def forward_is_deterministic(model: nn.Module, x: torch.Tensor) -> ProbeResult:
    """Largest absolute logit difference between two identical forward passes; passes when
    it is exactly 0 (a randomised model needs attacks with expectation over transformation)."""
    with torch.autocast(x.device.type, enabled=False):
        first, second = model(_fp32(x)), model(_fp32(x))
    diff = float((first - second).abs().max()) if first.numel() else 0.0
    return ProbeResult(
        "deterministic_forward",
        diff == 0.0,
        diff,
        len(x),
        f"max |logit difference| between two forward passes: {diff:.3g}",
    )


@torch.no_grad()
def outputs_look_like_logits(model: nn.Module, x: torch.Tensor, tol: float = 1e-5) -> ProbeResult:
    """Share (0-1) of output rows that look like probability vectors (all entries in [0, 1]
    and summing to 1 within ``tol``); passes unless every row does (as pyautoattack's check)."""
    with torch.autocast(x.device.type, enabled=False):
        out = model(_fp32(x))
    in_range = ((out >= -tol) & (out <= 1 + tol)).all(1)
    sums_to_one = (out.sum(1) - 1).abs() <= tol
    probability = in_range & sums_to_one
    share = float(probability.float().mean()) if len(out) else 0.0
    return ProbeResult(
        "outputs_are_logits",
        not (len(out) > 0 and bool(probability.all())),
        share,
        len(out),
        f"{int(probability.sum())} of {len(out)} output rows look like probabilities",
    )


def random_noise_examples(
    x: torch.Tensor, eps: float, norm: str = "linf", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform random points of the ``norm`` ball of radius ``eps`` around each example,
    clipped to [0, 1]: the baseline every attack must beat ("random noise hurts less")."""
    if eps == 0:
        return x.detach().clone()
    return random_in_ball(x.detach(), eps, norm, generator)
