"""White-box attacks: budgets, pixel range, hand-computed steps, determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.noise.adversarial import FGSM, PGDLinf, attack_names, build_attack
from robustlab.registry import UnknownNameError


class LinearModel(nn.Module):
    """logits = x.flatten() @ W: the input gradient of the CE loss is known in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight


def _toy_model(seed: int = 0) -> nn.Module:
    """A fixed random linear classifier on 4x4 grey images (3 classes), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(3, 16, generator=g))
        model[1].bias.zero_()
    return model.eval()


def test_fgsm_moves_every_pixel_by_eps_along_the_gradient_sign():
    # Two classes, logits (x . w0, x . w1) with w0 = +1, w1 = -1 everywhere. For label 0 the CE
    # loss grows when x . w0 falls, so the gradient sign is -1 for every pixel.
    weight = torch.stack([torch.ones(4), -torch.ones(4)], dim=1)
    model = LinearModel(weight).eval()
    x = torch.full((1, 1, 2, 2), 0.5)
    y = torch.tensor([0])
    x_adv = FGSM()(model, x, y, eps=0.1)
    assert torch.allclose(x_adv, torch.full_like(x, 0.4))


def test_fgsm_clips_to_the_pixel_range():
    weight = torch.stack([torch.ones(4), -torch.ones(4)], dim=1)
    model = LinearModel(weight).eval()
    x = torch.tensor([[[[0.0, 0.05], [0.5, 1.0]]]])
    x_adv = FGSM()(model, x, torch.tensor([0]), eps=0.1)
    assert torch.allclose(x_adv, torch.tensor([[[[0.0, 0.0], [0.4, 0.9]]]]))


@pytest.mark.parametrize(
    "name,params",
    [("fgsm", {}), ("pgd_linf", {"steps": 5}), ("pgd_linf", {"steps": 3, "restarts": 3})],
)
@pytest.mark.parametrize("eps", [0.0, 0.03, 0.3])
def test_attacks_respect_budget_and_pixel_range(name, params, eps):
    model = _toy_model()
    x = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(2))
    attack = build_attack(name, **params)
    x_adv = attack(model, x, y, eps, torch.Generator().manual_seed(3))
    assert x_adv.shape == x.shape
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if eps == 0:
        assert torch.equal(x_adv, x)


def test_pgd_without_random_start_is_the_textbook_loop():
    model = _toy_model()
    x = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(5))
    eps, steps, alpha = 0.1, 4, 0.025
    expected = x.clone()
    for _ in range(steps):
        expected.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(expected), y)
        (grad,) = torch.autograd.grad(loss, expected)
        expected = expected.detach() + alpha * grad.sign()
        expected = torch.clamp(x + torch.clamp(expected - x, -eps, eps), 0, 1)
    got = PGDLinf(steps=steps, step_size=alpha / eps, random_start=False)(model, x, y, eps)
    assert torch.allclose(got, expected, atol=1e-7)


def test_pgd_is_at_least_as_strong_as_fgsm_and_deterministic_given_a_seed():
    model = _toy_model()
    x = torch.rand(256, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    y = model(x).argmax(1)  # start from 100 % clean accuracy
    fgsm_acc = (model(FGSM()(model, x, y, 0.2)).argmax(1) == y).float().mean()
    pgd = PGDLinf(steps=20, step_size=0.1, random_start=True)
    a = pgd(model, x, y, 0.2, torch.Generator().manual_seed(0))
    b = pgd(model, x, y, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    pgd_acc = (model(a).argmax(1) == y).float().mean()
    assert pgd_acc <= fgsm_acc
    assert pgd_acc < 1.0


def test_restarts_never_lose_an_example_that_was_already_fooled():
    model = _toy_model()
    x = torch.rand(128, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    y = model(x).argmax(1)
    one = PGDLinf(steps=2, step_size=0.5, restarts=1)(
        model, x, y, 0.08, torch.Generator().manual_seed(0)
    )
    many = PGDLinf(steps=2, step_size=0.5, restarts=5)(
        model, x, y, 0.08, torch.Generator().manual_seed(0)
    )
    fooled_one = model(one).argmax(1) != y
    fooled_many = model(many).argmax(1) != y
    assert bool((fooled_many | ~fooled_one).all())  # fooled by one restart => fooled by five
    assert int(fooled_many.sum()) >= int(fooled_one.sum())


def test_unknown_attack_and_bad_parameters_are_named():
    with pytest.raises(UnknownNameError, match="fgsm, pgd_linf"):
        build_attack("deepfool")
    with pytest.raises(TypeError, match="pgd_linf"):
        build_attack("pgd_linf", stepz=3)
    with pytest.raises(ValueError, match="steps >= 1"):
        build_attack("pgd_linf", steps=0)
    assert {"fgsm", "pgd_linf"} <= set(attack_names())
