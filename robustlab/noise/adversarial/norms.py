"""Norm balls in pixel scale: sizes, projections, random points and a final budget guard.

All functions work per example on batches (N x ...), with images in [0, 1]. Random draws are
made on the CPU from ``generator`` and moved to the inputs' device, so a seed gives the same
noise on every device.
"""

from __future__ import annotations

import torch

NORMS = ("linf", "l2", "l1")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}")


def per_example_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Shape N values as N x 1 x ... x 1, to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def perturbation_norm(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example size of ``x_adv - x`` in ``norm``, computed in float64 (shape N)."""
    _check_norm(norm)
    delta = (x_adv.detach().double() - x.detach().double()).flatten(1)
    if delta.shape[1] == 0:
        return torch.zeros(len(delta), dtype=torch.float64, device=delta.device)
    if norm == "linf":
        return delta.abs().amax(1)
    if norm == "l2":
        return torch.linalg.vector_norm(delta, dim=1)
    return delta.abs().sum(1)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip ``x_adv - x`` to [-eps, eps], add it to ``x`` and clip to [0, 1].

    The operations and their order are the textbook PGD loop's (Madry et al.; torchattacks),
    so PGD without random start reproduces it bit for bit.
    """
    delta = torch.clamp(x_adv - x, min=-eps, max=eps)
    return torch.clamp(x + delta, min=0.0, max=1.0)


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale ``x_adv - x`` down to L2 norm ``eps`` where it is longer, then clip to [0, 1].

    Clipping to [0, 1] only shortens the perturbation (``x`` is in [0, 1]), so the result lies
    in the intersection of the ball and the box (it is not the exact Euclidean projection onto
    that intersection).
    """
    delta = x_adv - x
    size = torch.linalg.vector_norm(delta.flatten(1), dim=1)
    factor = torch.clamp(eps / (size + 1e-12), max=1.0)
    return torch.clamp(x + delta * per_example_view(factor, delta), min=0.0, max=1.0)


def l1_ball_projection(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of each example of ``delta`` onto the L1 ball of radius ``eps``.

    Sort-based algorithm of Duchi et al. (2008): soft-threshold the magnitudes by the theta
    that makes the L1 norm exactly ``eps``; examples already inside the ball are unchanged.
    """
    flat = delta.flatten(1)
    magnitude = flat.abs()
    outside = magnitude.sum(1) > eps
    if not bool(outside.any()):
        return delta
    rows = magnitude[outside]
    ordered, _ = torch.sort(rows, dim=1, descending=True)
    cumulative = ordered.cumsum(1)
    ranks = torch.arange(1, rows.shape[1] + 1, device=rows.device, dtype=rows.dtype)
    feasible = ordered * ranks > cumulative - eps
    count = feasible.to(torch.int64).cumsum(1).argmax(1, keepdim=True)  # last feasible rank - 1
    theta = (cumulative.gather(1, count) - eps) / (count + 1).to(rows.dtype)
    shrunk = torch.clamp(rows - theta, min=0.0) * flat[outside].sign()
    out = flat.clone()
    out[outside] = shrunk
    return out.view_as(delta)


def project_l1(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x_adv - x`` onto the L1 ball of radius ``eps`` (Duchi et al.), then clip the
    point to [0, 1]; clipping only shortens the perturbation, so both constraints hold."""
    delta = l1_ball_projection(x_adv - x, eps)
    return torch.clamp(x + delta, min=0.0, max=1.0)


PROJECTIONS = {"linf": project_linf, "l2": project_l2, "l1": project_l1}


def uniform_start(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform random point of the L-inf ball around ``x``, clipped to [0, 1] (PGD's start)."""
    noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
    return project_linf(x + (2 * noise - 1) * eps, x, eps)


def _l2_ball_noise(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform points of the unit L2 ball: a Gaussian direction, radius U^(1/d)."""
    n, d = shape[0], int(torch.Size(shape[1:]).numel())
    direction = torch.randn(n, d, generator=generator)
    direction /= torch.linalg.vector_norm(direction, dim=1, keepdim=True).clamp_min(1e-12)
    radius = torch.rand(n, 1, generator=generator) ** (1.0 / max(d, 1))
    return (direction * radius).view(shape)


def _l1_ball_noise(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform points of the unit L1 ball: d + 1 exponentials normalised by their sum give a
    uniform point of the simplex {w >= 0, sum w <= 1}; random signs fill the ball."""
    n, d = shape[0], int(torch.Size(shape[1:]).numel())
    gaps = torch.empty(n, d + 1).exponential_(generator=generator)
    magnitude = gaps[:, :d] / gaps.sum(1, keepdim=True)
    signs = torch.randint(0, 2, (n, d), generator=generator) * 2 - 1
    return (magnitude * signs).view(shape)


def random_in_ball(
    x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniform random point of the ``norm`` ball of radius ``eps`` around each example,
    clipped to [0, 1] (clipping only shortens the perturbation)."""
    _check_norm(norm)
    if norm == "linf":
        return uniform_start(x, eps, generator)
    draw = _l2_ball_noise if norm == "l2" else _l1_ball_noise
    noise = draw(x.shape, generator)
    return torch.clamp(x + eps * noise.to(x.device, x.dtype), min=0.0, max=1.0)


def enforce_budget(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Guarantee ``perturbation_norm(out, x, norm) <= eps`` exactly as measured.

    The L1 and L2 projections are exact in real arithmetic, but float rounding of
    ``x + delta`` can leave a perturbation a few ulps over its budget. Examples over it are
    shrunk towards ``x`` by a hair (at most three times); any still over are replaced by ``x``
    itself, which is always inside the budget. Examples within the budget are not touched.
    """
    out = x_adv
    for _ in range(3):
        size = perturbation_norm(out, x, norm)
        over = (size > eps).nonzero().squeeze(1)
        if over.numel() == 0:
            return out
        if out is x_adv:
            out = x_adv.clone()
        factor = (eps / size[over] * (1 - 2.0**-20)).to(x.dtype)
        delta = (out[over] - x[over]) * per_example_view(factor, x[over])
        out[over] = torch.clamp(x[over] + delta, min=0.0, max=1.0)
    over = perturbation_norm(out, x, norm) > eps
    out[over] = x[over]
    return out
