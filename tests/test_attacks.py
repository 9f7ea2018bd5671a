"""Attack contract and PGD-Linf: hand-computed steps, the textbook loop bit for bit, restarts,
shortcuts, the pass counter, the registry and its errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.noise.adversarial import (
    ATTACKS,
    FGSM,
    AttackParameterError,
    PGDLinf,
    _project,
    attack_names,
    build_attack,
    count_passes,
    linf_ascent,
    parameter_names,
    uniform_start,
)
from robustlab.registry import UnknownNameError

EXPECTED_ATTACKS = {
    "autoattack",
    "cw_linf",
    "ddn",
    "fgsm",
    "mim",
    "pgd_l1",
    "pgd_l2",
    "pgd_linf",
    "square",
}


class LinearModel(nn.Module):
    """logits = x.flatten() @ W: the input gradient of the CE loss is known in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight


class ConstantModel(nn.Module):
    """Logits (10, 0, 0) plus a negligible input term: always predicts class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1e-3))

    def forward(self, x):
        base = torch.tensor([10.0, 0.0, 0.0], device=x.device)
        return base + self.scale * x.flatten(1)[:, :3]


def _toy_model(seed: int = 0) -> nn.Module:
    """A fixed random linear classifier on 4x4 grey images (3 classes), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(3, 16, generator=g))
        model[1].bias.zero_()
    return model.eval()


def _small_cnn(seed: int = 0) -> nn.Module:
    """Conv-ReLU-pool-linear on 1x8x8 inputs, 10 classes: non-linear and batched."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    ).eval()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- the contract ---------------------------------------------------------------------------


def test_fgsm_moves_every_pixel_by_eps_along_the_gradient_sign():
    # Two classes, logits (x . w0, x . w1) with w0 = +1, w1 = -1 everywhere. For label 0 the CE
    # loss grows when x . w0 falls, so the gradient sign is -1 for every pixel.
    weight = torch.stack([torch.ones(4), -torch.ones(4)], dim=1)
    model = LinearModel(weight).eval()
    x = torch.full((1, 1, 2, 2), 0.5)
    x_adv = FGSM()(model, x, torch.tensor([0]), eps=0.1)
    assert torch.allclose(x_adv, torch.full_like(x, 0.4))


def test_fgsm_clips_to_the_pixel_range():
    weight = torch.stack([torch.ones(4), -torch.ones(4)], dim=1)
    model = LinearModel(weight).eval()
    x = torch.tensor([[[[0.0, 0.05], [0.5, 1.0]]]])
    x_adv = FGSM()(model, x, torch.tensor([0]), eps=0.1)
    assert torch.allclose(x_adv, torch.tensor([[[[0.0, 0.0], [0.4, 0.9]]]]))


@pytest.mark.parametrize("name", sorted(EXPECTED_ATTACKS))
def test_eps_zero_returns_the_input_itself_and_every_attack_has_a_norm(name):
    model = _small_cnn()
    x = torch.rand(6, 1, 8, 8, generator=_gen(1))
    y = torch.randint(0, 10, (6,), generator=_gen(2))
    attack = build_attack(name)
    assert attack.norm in ("linf", "l2", "l1")
    with count_passes(model) as passes:
        x_adv = attack(model, x, y, 0.0, _gen(3))
    assert torch.equal(x_adv, x)
    assert passes.forward == 0  # nothing is computed at eps 0


def test_negative_or_non_finite_eps_is_an_error_naming_the_attack():
    model, x, y = _toy_model(), torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    with pytest.raises(AttackParameterError, match="'pgd_linf': eps"):
        PGDLinf()(model, x, y, -0.1)
    with pytest.raises(AttackParameterError, match="'fgsm': eps"):
        FGSM()(model, x, y, float("nan"))


# -- PGD-Linf against the textbook loop -------------------------------------------------------


def textbook_pgd(model, x, y, eps, alpha, steps):
    """The torchattacks-style loop, written independently of the library."""
    loss_fn = nn.CrossEntropyLoss()
    adv = x.clone().detach()
    for _ in range(steps):
        adv.requires_grad = True
        cost = loss_fn(model(adv), y)
        grad = torch.autograd.grad(cost, adv, retain_graph=False, create_graph=False)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=0, max=1).detach()
    return adv


@pytest.mark.parametrize("eps,steps", [(8 / 255, 10), (0.1, 7), (0.3, 3)])
def test_pgd_without_random_start_is_bit_identical_to_the_textbook_loop(eps, steps):
    model = _small_cnn()
    x = torch.rand(32, 1, 8, 8, generator=_gen(4))
    y = torch.randint(0, 10, (32,), generator=_gen(5))
    alpha = eps / 4
    expected = textbook_pgd(model, x, y, eps, alpha, steps)
    got = PGDLinf(steps=steps, step_size=0.25, random_start=False)(model, x, y, eps)
    assert 0.25 * eps == alpha  # the relative step size maps onto the same float
    assert torch.equal(got, expected)
    assert not torch.equal(got, x)


def test_projection_and_ascent_helpers_keep_their_textbook_behaviour():
    x = torch.tensor([0.2, 0.95, 0.5, 0.0])
    x_adv = torch.tensor([0.5, 1.2, 0.45, -0.3])
    expected = torch.clamp(x + torch.clamp(x_adv - x, -0.1, 0.1), 0, 1)
    assert torch.equal(_project(x_adv, x, 0.1), expected)
    model, xb = _small_cnn(), torch.rand(8, 1, 8, 8, generator=_gen(6))
    yb = torch.randint(0, 10, (8,), generator=_gen(7))
    got = linf_ascent(
        lambda z: nn.functional.cross_entropy(model(z), yb), xb, xb.clone(), 0.1, 5, 0.025
    )
    assert torch.equal(got, textbook_pgd(model, xb, yb, 0.1, 0.025, 5))
    start = uniform_start(xb, 0.1, _gen(8))
    assert torch.equal(start, uniform_start(xb, 0.1, _gen(8)))
    assert float((start - xb).abs().max()) <= 0.1 + 1e-7 and 0 <= start.min() <= start.max() <= 1


def test_pgd_is_at_least_as_strong_as_fgsm_and_deterministic_given_a_seed():
    model = _toy_model()
    x = torch.rand(256, 1, 4, 4, generator=_gen(6))
    y = model(x).argmax(1)  # start from 100 % clean accuracy
    fgsm_acc = (model(FGSM()(model, x, y, 0.2)).argmax(1) == y).float().mean()
    pgd = PGDLinf(steps=20, step_size=0.1, random_start=True)
    a = pgd(model, x, y, 0.2, _gen(0))
    b = pgd(model, x, y, 0.2, _gen(0))
    assert torch.equal(a, b)
    pgd_acc = (model(a).argmax(1) == y).float().mean()
    assert pgd_acc <= fgsm_acc
    assert pgd_acc < 1.0


# -- restarts and shortcuts ---------------------------------------------------------------------


def test_restarts_keep_the_per_example_worst_case():
    model = _small_cnn()
    x = torch.rand(128, 1, 8, 8, generator=_gen(7))
    y = model(x).argmax(1)
    one = PGDLinf(steps=2, step_size=0.5)(model, x, y, 0.05, _gen(0))
    many = PGDLinf(steps=2, step_size=0.5, restarts=5)(model, x, y, 0.05, _gen(0))
    with torch.no_grad():
        fooled_one = model(one).argmax(1) != y
        fooled_many = model(many).argmax(1) != y
        loss_one = nn.functional.cross_entropy(model(one), y, reduction="none")
        loss_many = nn.functional.cross_entropy(model(many), y, reduction="none")
    assert bool((fooled_many | ~fooled_one).all())  # fooled by the first restart => kept
    assert torch.equal(many[fooled_one], one[fooled_one])  # the first fooling example is kept
    assert int(fooled_many.sum()) > int(fooled_one.sum())  # later restarts fool more
    standing = ~fooled_many
    assert bool((loss_many[standing] >= loss_one[standing]).all())  # else the highest loss
    assert float((many - x).abs().max()) <= 0.05 + 1e-6


def test_skip_misclassified_returns_those_points_untouched_and_attacks_only_the_others():
    model = _small_cnn()
    x = torch.rand(40, 1, 8, 8, generator=_gen(9))
    clean = model(x).argmax(1)
    y = clean.clone()
    y[::2] = (clean[::2] + 1) % 10  # every other point is misclassified
    attack = PGDLinf(steps=3, step_size=0.5, skip_misclassified=True)
    with count_passes(model) as passes:
        x_adv = attack(model, x, y, 0.1, _gen(0))
    assert torch.equal(x_adv[::2], x[::2])
    assert bool(((x_adv[1::2] - x[1::2]).abs().flatten(1).amax(1) > 0).all())
    assert (passes.forward, passes.backward) == (40 + 3 * 20, 3 * 20)


def test_pass_counter_counts_examples_exactly():
    model = ConstantModel().eval()  # predicts 0 whatever the input: never fooled for y = 0
    x = torch.rand(5, 1, 4, 4, generator=_gen(0))
    y = torch.zeros(5, dtype=torch.int64)
    with count_passes(model) as passes:
        FGSM()(model, x, y, 0.1)
    assert (passes.forward, passes.backward, passes.forward_calls) == (5, 5, 1)
    with count_passes(model) as passes:
        PGDLinf(steps=3, step_size=0.5)(model, x, y, 0.1, _gen(0))
    assert (passes.forward, passes.backward) == (15, 15)
    with count_passes(model) as passes:  # 2 runs of 3 steps, each followed by a check pass
        PGDLinf(steps=3, step_size=0.5, restarts=2)(model, x, y, 0.1, _gen(0))
    assert (passes.forward, passes.backward) == (15 + 5 + 15 + 5, 30)
    wrong = torch.ones(5, dtype=torch.int64)  # every point is already misclassified
    with count_passes(model) as passes:
        PGDLinf(steps=3, early_stop=True)(model, x, wrong, 0.1, _gen(0))
    assert (passes.forward, passes.backward) == (5, 0)  # fooled at the start: stopped
    with count_passes(model) as passes:
        x_adv = PGDLinf(steps=3, skip_misclassified=True)(model, x, wrong, 0.1, _gen(0))
    assert (passes.forward, passes.backward) == (5, 0)
    assert torch.equal(x_adv, x)
    model(x)  # outside the block: not counted
    assert passes.forward == 5


def test_early_stop_keeps_the_first_fooling_iterate():
    model = _small_cnn()
    x = torch.rand(64, 1, 8, 8, generator=_gen(10))
    y = model(x).argmax(1)
    eps, steps = 0.1, 6
    stopped = PGDLinf(steps=steps, step_size=0.25, random_start=False, early_stop=True)
    x_stop = stopped(model, x, y, eps)
    # per example, the textbook trajectory: iterate k after k steps
    trajectory = [x] + [textbook_pgd(model, x, y, eps, eps / 4, k) for k in range(1, steps + 1)]
    with torch.no_grad():
        fooled = torch.stack([model(t).argmax(1) != y for t in trajectory[:-1]])  # steps x N
    for i in range(len(x)):
        hits = fooled[:, i].nonzero()
        k = int(hits[0]) if len(hits) else steps
        assert torch.equal(x_stop[i], trajectory[k][i]), i
    assert bool(fooled.any(0).sum() > 0)


# -- registry and parameters ------------------------------------------------------------------


def test_registry_lists_every_attack_and_unknown_names_are_named():
    assert set(attack_names()) >= EXPECTED_ATTACKS
    assert set(attack_names()) == set(ATTACKS.names())
    with pytest.raises(UnknownNameError, match="fgsm, mim, pgd_l1"):
        build_attack("deepfool")


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("pgd_linf", {"stepz": 3}, "'pgd_linf': unknown parameter 'stepz'; known: "),
        ("pgd_linf", {"steps": 0}, "'pgd_linf': parameter 'steps' must be an integer >= 1"),
        ("pgd_linf", {"steps": 2.5}, "parameter 'steps' must be an integer"),
        ("pgd_linf", {"step_size": -1}, "parameter 'step_size' must be a number > 0"),
        ("pgd_linf", {"random_start": "yes"}, "parameter 'random_start' must be true or false"),
        ("pgd_linf", {"restarts": 3, "random_start": False}, "parameter 'restarts' must be 1"),
        ("pgd_linf", {"loss": "dlr"}, "parameter 'loss' must be one of ce, cw"),
        ("cw_linf", {"restarts": 0}, "'cw_linf': parameter 'restarts'"),
        ("mim", {"decay": -1.0}, "'mim': parameter 'decay' must be a number >= 0"),
        ("pgd_l1", {"sparsity": 1.0}, "'pgd_l1': parameter 'sparsity' must be a number in"),
        ("pgd_l2", {"early_stop": 1}, "'pgd_l2': parameter 'early_stop' must be true or false"),
        ("ddn", {"gamma": 1.5}, "'ddn': parameter 'gamma' must be a number > 0 and <= 0.999"),
        ("fgsm", {"skip_misclassified": None}, "'fgsm': parameter 'skip_misclassified'"),
        ("autoattack", {"version": "fast"}, "'autoattack': parameter 'version' must be one of"),
        ("autoattack", {"version": "custom"}, "'autoattack': parameter 'attacks' must be a non"),
        ("autoattack", {"attacks": ["apgd-ce"]}, "parameter 'attacks' must be left out unless"),
        (
            "autoattack",
            {"version": "custom", "attacks": ["apgd-x"]},
            "parameter 'attacks' must be a non-empty list of apgd-ce",
        ),
        ("autoattack", {"norm": "l1"}, "'autoattack': parameter 'norm' must be one of linf, l2"),
        ("autoattack", {"seed": None}, "'autoattack': parameter 'seed' must be an integer >= 0"),
        ("square", {"n_queries": 0}, "'square': parameter 'n_queries' must be an integer >= 1"),
        ("square", {"p_init": 2.0}, "'square': parameter 'p_init' must be a number > 0 and <= 1"),
    ],
)
def test_bad_parameters_raise_naming_the_attack_and_the_parameter(name, params, match):
    with pytest.raises((TypeError, AttackParameterError), match=match):
        build_attack(name, **params)


def test_parameters_come_as_keywords_with_documented_defaults():
    assert parameter_names(PGDLinf) == [
        "skip_misclassified",
        "steps",
        "step_size",
        "random_start",
        "restarts",
        "early_stop",
        "loss",
    ]
    cw = build_attack("cw_linf")
    assert (cw.steps, cw.step_size, cw.loss, cw.norm) == (40, 0.1, "cw", "linf")
    mim = build_attack("mim")
    assert (mim.steps, mim.step_size, mim.decay, mim.random_start) == (20, 0.05, 1.0, True)
    assert build_attack("mim", steps=10).step_size == 0.1
    assert build_attack("pgd_l2").norm == "l2" and build_attack("pgd_l1").norm == "l1"
    assert build_attack("autoattack", norm="Linf").norm == "linf"  # pyautoattack's spelling too
    assert build_attack("autoattack", norm="L2").norm == "l2"
    pgd = PGDLinf()  # the training techniques' defaults: the textbook loop, no shortcuts
    assert (pgd.steps, pgd.step_size, pgd.random_start, pgd.restarts) == (10, 0.25, True, 1)
    assert not pgd.early_stop and not pgd.skip_misclassified
