"""Each technique's loss on a tiny model and batch: finite, differentiable, and the formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from robustlab.models import build_model
from robustlab.training.techniques import build_technique, technique_names

PARAMS = {
    "standard": {},
    "pgd_at": {"eps": 0.1, "steps": 2},
    "trades": {"eps": 0.1, "steps": 2, "beta": 6.0},
    "mart": {"eps": 0.1, "steps": 2, "lam": 5.0},
    "fast_at": {"eps": 0.1},
    "awp": {"eps": 0.1, "steps": 2, "gamma": 0.01},
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", 3, 1, 8, width=4, hidden=8).train()


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])


def test_every_registered_technique_is_tested():
    assert set(technique_names()) == set(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("soft", [False, True])
def test_loss_is_finite_and_differentiable(name, soft):
    model, (x, y) = _model(), _batch()
    target = F.one_hot(y, 3).float() * 0.9 + 0.1 / 3 if soft else y
    technique = build_technique(name, **PARAMS[name])
    loss, logits = technique.loss(model, x, target, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and math.isfinite(loss.item()) and logits.shape == (6, 3)
    loss.backward()
    technique.after_step(model)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert model.training  # the attack's eval mode is undone


def test_losses_are_deterministic_given_the_generator():
    x, y = _batch()
    for name in ("pgd_at", "trades", "mart", "fast_at"):
        technique = build_technique(name, **PARAMS[name])
        a = technique.loss(_model(), x, y, torch.Generator().manual_seed(5))[0]
        b = technique.loss(_model(), x, y, torch.Generator().manual_seed(5))[0]
        assert torch.equal(a, b), name


def test_trades_with_beta_zero_is_clean_cross_entropy():
    model, (x, y) = _model(), _batch()
    loss, _ = build_technique("trades", eps=0.1, steps=2, beta=0.0).loss(model, x, y, None)
    assert torch.equal(loss, F.cross_entropy(model(x), y))


class _Constant(nn.Module):
    """Logits that ignore the input: log(1, 2, 1) -> probabilities (0.25, 0.5, 0.25)."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.log(torch.tensor([1.0, 2.0, 1.0])))
        self.dummy = nn.Linear(1, 1)  # a weight matrix, so AWP has something to perturb

    def forward(self, x):
        return self.logits.expand(len(x), 3) + 0.0 * self.dummy(x.flatten(1)[:, :1])


def test_trades_and_mart_on_a_hand_checkable_case():
    x, y = torch.full((2, 1, 2, 2), 0.5), torch.tensor([0, 1])
    model = _Constant()
    # adversarial and clean predictions agree, so the KL terms vanish
    trades, _ = build_technique("trades", eps=0.1, steps=1, beta=6.0).loss(model, x, y, None)
    expected_ce = (-math.log(0.25) - math.log(0.5)) / 2
    assert trades.item() == pytest.approx(expected_ce, abs=1e-6)
    # MART: CE + mean of -log(1.0001 - largest wrong-class probability)
    mart, _ = build_technique("mart", eps=0.1, steps=1, lam=5.0).loss(model, x, y, None)
    boosted = (-math.log(1.0001 - 0.5) - math.log(1.0001 - 0.25)) / 2
    assert mart.item() == pytest.approx(expected_ce + boosted, abs=1e-6)


def test_mart_weights_the_kl_term_by_one_minus_the_true_probability():
    x, y = _batch()
    base = build_technique("mart", eps=0.1, steps=2, lam=0.0)
    full = build_technique("mart", eps=0.1, steps=2, lam=5.0)
    a = base.loss(_model(), x, y, torch.Generator().manual_seed(2))[0]
    b = full.loss(_model(), x, y, torch.Generator().manual_seed(2))[0]
    assert b > a  # the weighted KL term is positive on a model that reacts to the input


def test_fast_at_is_one_pgd_step_of_one_and_a_quarter_eps():
    from robustlab.noise.adversarial import PGDLinf

    model, (x, y) = _model(), _batch()
    loss, logits = build_technique("fast_at", eps=0.1).loss(
        model, x, y, torch.Generator().manual_seed(4)
    )
    model.eval()
    x_adv = PGDLinf(steps=1, step_size=1.25)(model, x, y, 0.1, torch.Generator().manual_seed(4))
    model.train()
    assert torch.equal(logits, model(x_adv))
    assert torch.equal(loss, F.cross_entropy(model(x_adv), y))


def test_awp_perturbs_weight_matrices_by_gamma_times_their_norm_and_restores_them():
    model, (x, y) = _model(), _batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    awp = build_technique("awp", eps=0.1, steps=1, gamma=0.01)
    awp.loss(model, x, y, torch.Generator().manual_seed(0))
    for name, param in model.named_parameters():
        moved = (param.detach() - before[name]).norm()
        if param.ndim > 1:
            assert moved.item() == pytest.approx(0.01 * before[name].norm().item(), rel=1e-4)
        else:
            assert moved.item() == 0.0  # biases are not perturbed
    awp.after_step(model)
    for name, value in model.state_dict().items():
        assert torch.allclose(value, before[name], atol=1e-7), name
