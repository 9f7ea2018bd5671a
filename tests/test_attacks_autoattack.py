"""AutoAttack and Square through the registry: the same results as pyautoattack called directly
with the same seed, explicit seeding, the global generator left alone, and its check flags."""

from __future__ import annotations

import pytest
import torch
from pyautoattack import AutoAttack as PyAutoAttack
from torch import nn

from robustlab.evaluation import attack_examples
from robustlab.noise.adversarial import (
    AutoAttack,
    Square,
    autoattack_flags,
    build_attack,
    count_passes,
    perturbation_norm,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes)).eval()


def _data(n: int = 48, seed: int = 1):
    x = torch.rand(n, 1, 8, 8, generator=_gen(seed))
    y = torch.randint(0, 10, (n,), generator=_gen(seed + 1))
    return x, y


def _direct(model, x, y, eps, seed, norm="Linf", **kwargs):
    adversary = PyAutoAttack(model, norm=norm, eps=eps, seed=seed, device="cpu", **kwargs)
    x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv, float((y_adv == y).float().mean())


@pytest.mark.parametrize(
    "norm,eps,attacks",
    [("linf", 0.05, ["apgd-ce", "apgd-t"]), ("l2", 0.5, ["apgd-ce", "fab-t", "square"])],
)
def test_registry_autoattack_matches_pyautoattack_called_directly(norm, eps, attacks):
    model = _model()
    x, y = _data()
    y[:24] = model(x[:24]).argmax(1)  # half the points start correct
    seed = 1234
    attack = build_attack("autoattack", version="custom", attacks=attacks, norm=norm, n_queries=300)
    x_ours = attack_examples(model, x, y, attack, eps, _gen(seed), batch_size=len(x))
    direct = PyAutoAttack(
        model,
        norm={"linf": "Linf", "l2": "L2"}[norm],
        eps=eps,
        seed=seed,
        device="cpu",
        version="custom",
        attacks=attacks,
    )
    direct.square.n_queries = 300
    x_direct, y_direct = direct.run_standard_evaluation(x, y, batch_size=len(x))
    ours = float((model(x_ours).argmax(1) == y).float().mean())
    assert ours == pytest.approx(float((y_direct == y).float().mean()), abs=0)
    assert torch.equal(x_ours, x_direct)
    assert 0 < ours < float((model(x).argmax(1) == y).float().mean())
    assert float(perturbation_norm(x_ours, x, norm).max()) <= eps + 1e-6


def test_standard_version_matches_pyautoattack_directly():
    model = _model(2)
    x, y = _data(32, seed=3)
    y = model(x).argmax(1)
    eps = 0.03
    x_ours = AutoAttack()(model, x, y, eps, _gen(5))
    x_direct, robust_direct = _direct(model, x, y, eps, 5, version="standard")
    assert torch.equal(x_ours, x_direct)
    assert float((model(x_ours).argmax(1) == y).float().mean()) == robust_direct
    assert 0 < robust_direct < 1


def test_seed_comes_from_the_generator_else_the_parameter_and_global_rng_is_untouched():
    model = _model()
    x, y = _data(16)
    y = model(x).argmax(1)
    attack = AutoAttack(version="custom", attacks=["apgd-ce"], seed=7)
    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    from_param = attack(model, x, y, 0.1)
    assert torch.equal(torch.rand(3), expected_next)  # pyautoattack reseeds; we restore
    from_generator = AutoAttack(version="custom", attacks=["apgd-ce"], seed=0)(
        model, x, y, 0.1, _gen(7)
    )
    assert torch.equal(from_param, from_generator)
    other = attack(model, x, y, 0.1, _gen(8))  # APGD's random start changes with the seed
    assert not torch.equal(other, from_param)


def test_square_alone_is_a_black_box_attack_with_a_query_budget():
    model = _model()
    x, y = _data(24)
    y = model(x).argmax(1)
    with count_passes(model) as passes:
        x_adv = Square(n_queries=50)(model, x, y, 0.1, _gen(0))
    assert passes.backward == 0  # score-based: no gradients
    assert passes.forward <= 24 * (50 + 10)  # the queries plus pyautoattack's check passes
    assert float(perturbation_norm(x_adv, x, "linf").max()) <= 0.1 + 1e-6
    x_direct = PyAutoAttack(
        model, norm="Linf", eps=0.1, seed=0, device="cpu", version="custom", attacks=["square"]
    )
    x_direct.square.n_queries = 50
    expected, _ = x_direct.run_standard_evaluation(x, y, batch_size=len(x))
    assert torch.equal(x_adv, expected)


# -- pyautoattack's own checks, captured as flags ----------------------------------------------


class Softmax(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).softmax(1)


class Noisy(nn.Module):
    """A randomised defence: Gaussian noise on the input at every pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x + 0.05 * torch.randn_like(x))


class Quantised(nn.Module):
    """Input quantisation: an all-zero input gradient everywhere (gradient masking)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


class InputStepDefence(nn.Module):
    """A dynamic defence: one gradient step on the input inside the forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.inner(z).logsumexp(1).sum(), z)
        return self.inner(x - 0.01 * grad.sign())


def test_clean_model_raises_no_flags():
    model = _model()
    x, y = _data(24)
    assert autoattack_flags(model, x, y, 0.05, 0, n_queries=50) == []


@pytest.mark.parametrize(
    "wrap,flag",
    [
        (Softmax, "softmax_output"),
        (Noisy, "randomized"),
        (InputStepDefence, "dynamic"),
        (Quantised, "zero_gradients"),
        (Quantised, "square_beats_white_box"),
    ],
)
def test_checks_that_fire_are_reported_by_name(wrap, flag):
    model = wrap(_model()).eval()
    x, y = _data(24)
    with torch.no_grad():
        y = model(x).argmax(1)
    flags = autoattack_flags(model, x, y, 0.2, 0, n_queries=100)
    assert flag in flags


def test_a_dynamic_model_does_not_leave_its_flag_on_later_models():
    x, y = _data(8)
    dynamic = InputStepDefence(_model()).eval()
    assert "dynamic" in autoattack_flags(dynamic, x, y, 0.05, 0, n_queries=5)
    assert "dynamic" not in autoattack_flags(_model(), x, y, 0.05, 0, n_queries=5)


def test_flags_accumulate_on_the_attack_object():
    model = Softmax(_model()).eval()
    x, y = _data(8)
    attack = AutoAttack(version="custom", attacks=["apgd-ce"])
    attack(model, x, y, 0.05, _gen(0))
    assert set(attack.flags) == {"softmax_output"}
    assert "probability distribution" in attack.flags["softmax_output"]
