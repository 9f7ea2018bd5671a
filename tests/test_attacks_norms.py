"""L2 and L1 balls: hand-computed projections and steps, random points, the budget guard, and a
property test that every attack respects its budget and the pixel range."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from robustlab.noise.adversarial import (
    DDN,
    PGDL1,
    PGDL2,
    at_budget,
    build_attack,
    cw_margin,
    enforce_budget,
    l1_ball_projection,
    perturbation_norm,
    project_l1,
    project_l2,
    random_in_ball,
)
from robustlab.noise.adversarial.ascent import MomentumStep, SparseL1Step, l2_step


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_perturbation_norms_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0] = torch.tensor([0.3, -0.4])
    x_adv[1, 0, 1, 1] = 0.5
    assert perturbation_norm(x_adv, x, "linf").tolist() == pytest.approx([0.4, 0.5])
    assert perturbation_norm(x_adv, x, "l2").tolist() == pytest.approx([0.5, 0.5])
    assert perturbation_norm(x_adv, x, "l1").tolist() == pytest.approx([0.7, 0.5])
    with pytest.raises(ValueError, match="unknown norm 'l0'; known: linf, l2, l1"):
        perturbation_norm(x_adv, x, "l0")


def test_l1_ball_projection_by_hand():
    # |v| sorted: 3, 2, 1; cumulative 3, 5, 6; rho = 2, theta = (5 - 3) / 2 = 1
    delta = torch.tensor([[3.0, 1.0, -2.0], [0.5, -0.5, 0.0]])
    got = l1_ball_projection(delta, 3.0)
    assert torch.allclose(got, torch.tensor([[2.0, 0.0, -1.0], [0.5, -0.5, 0.0]]))
    assert torch.equal(got[1], delta[1])  # inside the ball: unchanged


def test_l1_projection_is_the_closest_point_of_the_ball():
    g = _gen(0)
    delta = torch.randn(20, 12, generator=g)
    eps = 2.0
    proj = l1_ball_projection(delta, eps)
    assert torch.allclose(proj.abs().sum(1), torch.full((20,), eps), atol=1e-5)
    for _ in range(50):  # no random point of the ball is closer
        other = torch.randn(20, 12, generator=g)
        other = other / other.abs().sum(1, keepdim=True) * eps * torch.rand(20, 1, generator=g)
        assert bool(((delta - proj).norm(dim=1) <= (delta - other).norm(dim=1) + 1e-5).all())


def test_l2_and_l1_projections_then_clip_to_the_box():
    x = torch.full((1, 4), 0.5)
    x_adv = x + torch.tensor([[0.3, 0.4, 0.0, 0.0]])
    assert torch.allclose(project_l2(x_adv, x, 0.25), x + torch.tensor([[0.15, 0.2, 0.0, 0.0]]))
    assert torch.equal(project_l2(x_adv, x, 1.0), x_adv)  # inside: unchanged
    far = x + torch.tensor([[0.9, -0.1, 0.0, 0.0]])  # L1 1.0 > 0.8: theta 0.1 -> (0.8, 0, 0, 0)
    assert torch.allclose(project_l1(far, x, 0.8), torch.tensor([[1.0, 0.5, 0.5, 0.5]]))


def test_l2_step_follows_the_normalised_gradient():
    x = torch.zeros(1, 2)
    assert torch.allclose(l2_step(x, torch.tensor([[3.0, 4.0]]), 0.5), torch.tensor([[0.3, 0.4]]))
    assert torch.equal(l2_step(x, torch.zeros(1, 2), 0.5), x)  # zero gradient: no move


def test_sparse_l1_step_moves_the_largest_unblocked_coordinates():
    x_adv = torch.tensor([[[[0.5, 0.0], [0.5, 1.0]]]])
    grad = torch.tensor([[[[0.1, -0.9], [-0.3, 0.8]]]])
    # pixels 1 and 3 are blocked by the box; of 0 and 2, both are in the top 50 %
    moved = SparseL1Step(sparsity=0.5)(x_adv, grad, 0.4)
    assert torch.allclose(moved, torch.tensor([[[[0.7, 0.0], [0.3, 1.0]]]]))
    only_top = SparseL1Step(sparsity=0.75)(x_adv, grad, 0.4)  # one coordinate: pixel 2
    assert torch.allclose(only_top, torch.tensor([[[[0.5, 0.0], [0.1, 1.0]]]]))


def test_momentum_step_accumulates_l1_normalised_gradients():
    x = torch.zeros(1, 2)
    step = MomentumStep(decay=1.0, batch=1, like=x)
    first = step(x, torch.tensor([[1.0, -3.0]]), 0.1)  # g = (0.25, -0.75)
    assert torch.allclose(first, torch.tensor([[0.1, -0.1]]))
    second = step(x, torch.tensor([[-2.0, 0.0]]), 0.1)  # g = (-0.75, -0.75): both move
    assert torch.allclose(second, torch.tensor([[-0.1, -0.1]]))
    plain = MomentumStep(decay=0.0, batch=1, like=x)
    plain(x, torch.tensor([[1.0, -3.0]]), 0.1)
    assert torch.allclose(plain(x, torch.tensor([[-2.0, 0.0]]), 0.1), torch.tensor([[-0.1, 0.0]]))


def test_cw_margin_by_hand():
    logits = torch.tensor([[2.0, 5.0, 1.0], [4.0, 1.0, 3.5]])
    assert cw_margin(logits, torch.tensor([1, 0])).tolist() == pytest.approx([-3.0, -0.5])
    assert cw_margin(logits, torch.tensor([0, 1])).tolist() == pytest.approx([3.0, 3.0])


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_random_points_are_inside_the_ball_and_the_box_and_seeded(norm):
    x = torch.rand(200, 1, 6, 6, generator=_gen(1))
    eps = {"linf": 0.1, "l2": 1.0, "l1": 5.0}[norm]
    a = random_in_ball(x, eps, norm, _gen(2))
    assert torch.equal(a, random_in_ball(x, eps, norm, _gen(2)))
    sizes = perturbation_norm(a, x, norm)
    assert float(sizes.max()) <= eps + 1e-6
    assert float(sizes.min()) > 0
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_uniform_l1_and_l2_draws_fill_the_ball():
    # without clipping, the radius of a uniform point of a d-ball has E[(r / eps)^d] = 1 / 2
    x = torch.full((4000, 3), 0.5)
    for norm in ("l2", "l1"):
        r = perturbation_norm(random_in_ball(x, 0.3, norm, _gen(3)), x, norm) / 0.3
        assert float((r**3).mean()) == pytest.approx(0.5, abs=0.03)


def test_enforce_budget_shrinks_only_examples_over_the_budget():
    x = torch.full((3, 4), 0.5)
    x_adv = x + torch.tensor([[0.1, 0.0, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0]])
    got = enforce_budget(x_adv, x, 0.2, "l2")
    assert torch.equal(got[0], x_adv[0]) and torch.equal(got[2], x_adv[2])
    assert float(perturbation_norm(got, x, "l2")[1]) <= 0.2
    assert float(perturbation_norm(got, x, "l2")[1]) == pytest.approx(0.2, rel=1e-5)


def _mlp(seed: int, d: int, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, classes)).eval()


def test_pgd_l2_and_l1_break_a_model_within_budget():
    model = _mlp(0, 36, classes=3)
    x = torch.rand(200, 1, 6, 6, generator=_gen(4))
    y = model(x).argmax(1)
    for attack, eps in ((PGDL2(), 1.0), (PGDL1(), 6.0), (PGDL1(random_start=True), 6.0)):
        x_adv = attack(model, x, y, eps, _gen(5))
        assert float(perturbation_norm(x_adv, x, attack.norm).max()) <= eps
        accuracy = float((model(x_adv).argmax(1) == y).float().mean())
        assert accuracy < 0.5, attack


def test_ddn_finds_small_perturbations_and_reports_them_honestly_at_a_budget():
    model = _mlp(1, 36, classes=3)
    x = torch.rand(64, 1, 6, 6, generator=_gen(6))
    y = model(x).argmax(1)
    y[:4] = (y[:4] + 1) % 3  # four points already misclassified: size 0
    ddn = DDN(steps=60)
    x_min, sizes = ddn.minimal_examples(model, x, y)
    assert torch.equal(sizes[:4], torch.zeros(4, dtype=torch.float64))
    found = torch.isfinite(sizes)
    assert float(found.float().mean()) > 0.9
    with torch.no_grad():
        assert bool((model(x_min[found]).argmax(1) != y[found]).all())  # really adversarial
    assert torch.allclose(perturbation_norm(x_min, x, "l2")[found], sizes[found])
    median = float(sizes[found].median())
    for eps in (0.5 * median, 2 * median):
        x_eps = ddn(model, x, y, eps)
        assert torch.equal(x_eps, at_budget(x, x_min, sizes, eps))
        fits = sizes <= eps
        assert torch.equal(x_eps[~fits], x[~fits])  # not broken in budget: unperturbed
        assert float(perturbation_norm(x_eps, x, "l2").max()) <= eps
    # DDN's minimal sizes are tighter than what PGD-L2 needs: PGD at the DDN median breaks
    # no more than about the half DDN breaks there
    x_pgd = PGDL2(steps=40)(model, x, y, median, _gen(7))
    pgd_broken = float((model(x_pgd).argmax(1) != y).float().mean())
    assert pgd_broken <= float((sizes <= median).float().mean()) + 0.15


# -- property test: every attack, random inputs and tiny models -------------------------------

CHEAP = {
    "fgsm": {},
    "pgd_linf": {"steps": 3, "restarts": 2},
    "cw_linf": {"steps": 3, "early_stop": True},
    "mim": {"steps": 3, "skip_misclassified": True},
    "pgd_l2": {"steps": 3, "restarts": 2, "early_stop": True},
    "pgd_l1": {"steps": 3, "sparsity": 0.5},
    "ddn": {"steps": 5, "init_norm": 0.5},
    "autoattack": {"version": "custom", "attacks": ["apgd-ce"]},
    "square": {"n_queries": 20},
}
BUDGETS = {"linf": (0.0, 0.5), "l2": (0.0, 3.0), "l1": (0.0, 10.0)}


@st.composite
def cases(draw):
    name = draw(st.sampled_from(sorted(CHEAP)))
    norm = build_attack(name, **CHEAP[name]).norm
    low, high = BUDGETS[norm]
    eps = draw(st.one_of(st.just(0.0), st.floats(low, high, allow_nan=False).filter(bool)))
    n = draw(st.integers(1, 5))
    side = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**16))
    return name, eps, n, side, seed


@settings(
    max_examples=90,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cases())
def test_every_attack_respects_its_budget_and_the_pixel_range(case):
    name, eps, n, side, seed = case
    g = _gen(seed)
    x = torch.rand(n, 1, side, side, generator=g)
    x[: n // 2] = (x[: n // 2] > 0.5).float()  # saturated pixels: the box constraints bind
    y = torch.randint(0, 3, (n,), generator=g)
    model = _mlp(seed, side * side)
    attack = build_attack(name, **CHEAP[name])
    x_adv = attack(model, x, y, eps, _gen(seed + 1))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(perturbation_norm(x_adv, x, attack.norm).max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not bool(torch.isnan(x_adv).any())
    if eps == 0:
        assert torch.equal(x_adv, x)
    assert math.isfinite(float(x_adv.sum()))
