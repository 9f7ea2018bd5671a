"""The iterative gradient-ascent loop behind PGD (every norm), CW-Linf and MIM.

One loop, parameterised by a loss, a steepest-ascent step and a projection. Without early stop
it is the textbook loop (forward, backward, step, project on the whole batch); with early stop
each example keeps the first iterate that fools the model and drops out of the batch, so later
iterations cost only the examples still standing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robustlab.noise.adversarial.losses import Loss, batch_objective
from robustlab.noise.adversarial.norms import per_example_view, project_linf

#: ``step(x_adv, grad, alpha, rows) -> moved point``; ``rows`` are the positions of the
#: examples in the attacked batch (None: all of them), for steps that keep per-example state.
Step = Callable[[torch.Tensor, torch.Tensor, float, torch.Tensor | None], torch.Tensor]
#: ``project(x_adv, x, eps) -> point inside the ball and [0, 1]``
Projection = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def sign_step(x_adv: torch.Tensor, grad: torch.Tensor, alpha: float, rows=None) -> torch.Tensor:
    """L-inf steepest ascent: ``alpha`` along the sign of the gradient."""
    return x_adv + alpha * grad.sign()


def l2_step(x_adv: torch.Tensor, grad: torch.Tensor, alpha: float, rows=None) -> torch.Tensor:
    """L2 steepest ascent: ``alpha`` along the gradient scaled to unit L2 norm (a zero gradient
    does not move)."""
    size = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    return x_adv + alpha * grad / per_example_view(size + 1e-12, grad)


class SparseL1Step:
    """L1 steepest ascent with sparsity (SLIDE, Tramer & Boneh 2019).

    Coordinates that the box [0, 1] blocks (at 0 with a negative, at 1 with a positive
    gradient) are dropped; of the rest, those whose |gradient| reaches the ``sparsity``
    quantile (at least one) move by ``sign(gradient)``, and the step is scaled to L1 length
    ``alpha``.
    """

    def __init__(self, sparsity: float) -> None:
        self.sparsity = sparsity

    def __call__(self, x_adv: torch.Tensor, grad: torch.Tensor, alpha: float, rows=None):
        blocked = ((x_adv <= 0) & (grad < 0)) | ((x_adv >= 1) & (grad > 0))
        grad = grad.masked_fill(blocked, 0.0)
        magnitude = grad.abs().flatten(1)
        keep = max(1, round((1.0 - self.sparsity) * magnitude.shape[1]))
        threshold = magnitude.topk(keep, dim=1).values[:, -1:]
        chosen = (magnitude >= threshold) & (magnitude > 0)
        direction = grad.flatten(1).sign() * chosen
        length = direction.abs().sum(1, keepdim=True).clamp_min(1.0)
        return x_adv + alpha * (direction / length).view_as(x_adv)


class MomentumStep:
    """MI-FGSM's step (Dong et al. 2018): ``g <- decay * g + grad / ||grad||_1``, then
    ``alpha`` along ``sign(g)``; ``g`` is kept per example for one attack run."""

    def __init__(self, decay: float, batch: int, like: torch.Tensor) -> None:
        self.decay = decay
        self.momentum = torch.zeros((batch, *like.shape[1:]), dtype=like.dtype, device=like.device)

    def __call__(self, x_adv: torch.Tensor, grad: torch.Tensor, alpha: float, rows=None):
        size = grad.abs().flatten(1).sum(1)
        normalised = grad / per_example_view(size.clamp_min(1e-12), grad)
        if rows is None:
            self.momentum = self.decay * self.momentum + normalised
            g = self.momentum
        else:
            g = self.decay * self.momentum[rows] + normalised
            self.momentum[rows] = g
        return x_adv + alpha * g.sign()


def gradient_ascent(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float,
    loss: Loss,
    step: Step,
    project: Projection,
    early_stop: bool = False,
    count: int | None = None,
) -> torch.Tensor:
    """``steps`` ascent steps on ``loss`` from ``start``, each projected into the ball.

    The objective is the sum of the per-example losses divided by ``count`` (default: the
    batch size, i.e. the batch mean). Without ``early_stop``: per step, one forward and one
    backward pass over the batch (the textbook loop, bit for bit). With ``early_stop``: the
    logits of each forward pass also tell which iterates already fool the model; those
    examples keep that iterate and leave the batch (a stronger and cheaper variant: an example
    once fooled stays fooled).
    """
    count = len(x) if count is None else count
    if not early_stop:
        x_adv = start
        for _ in range(steps):
            z = x_adv.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(batch_objective(loss, model(z), y, count), z)
            x_adv = project(step(x_adv.detach(), grad, alpha, None), x, eps)
        return x_adv
    out = start.detach().clone()
    active = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        z = out[active].requires_grad_(True)
        logits = model(z)
        standing = (logits.argmax(1) == y[active]).nonzero().squeeze(1)
        if standing.numel() == 0:
            break
        ys = y[active[standing]]
        (grad,) = torch.autograd.grad(batch_objective(loss, logits[standing], ys, count), z)
        active = active[standing]
        moved = step(z.detach()[standing], grad[standing], alpha, active)
        out[active] = project(moved, x[active], eps)
    return out


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
        x_adv = project_linf(x_adv.detach() + alpha * grad.sign(), x, eps)
    return x_adv
