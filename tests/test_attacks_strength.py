"""Attack strength on small models trained on a Fashion-MNIST subset: a standard model falls to
about 0 % under PGD at a large eps while a PGD-AT model keeps clearly more; the shortcuts never
raise robust accuracy; the evaluation sanity checks of notes/papers.md section 4 hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustlab.data import load_dataset, stratified_subset
from robustlab.evaluation import evaluate_attack, predict, robust_predict
from robustlab.models import build_model
from robustlab.noise.adversarial import (
    build_attack,
    forward_is_deterministic,
    input_gradient_stats,
    outputs_look_like_logits,
    random_noise_examples,
)
from robustlab.training import TrainConfig, build_technique, fit

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
TECHNIQUES = {"standard": {}, "pgd_at": {"eps": 0.15, "steps": 3, "step_size": 0.5}}


def _subset(split: str, size: int):
    data = load_dataset("fashion_mnist", split)
    keep = torch.from_numpy(stratified_subset(data.labels, size, seed=0))
    x, y = data.tensors()
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def setup():
    """Two small CNNs (standard, PGD-AT at eps 0.15) trained on 1500 images; 200 test images."""
    train, test = _subset("train", 1500), _subset("test", 200)
    config = TrainConfig(
        epochs=5, batch_size=50, lr=0.1, amp="none", val_pgd_size=20, val_pgd_steps=1
    )
    models = {}
    for name, params in TECHNIQUES.items():
        torch.manual_seed(0)
        model = build_model("small_cnn", 10, 1, 28, width=8, hidden=64)
        technique = build_technique(name, **params)
        fit(model, train, (test[0][:20], test[1][:20]), technique, config, seed=0, progress=False)
        models[name] = model.eval()
    return models, test


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _accuracy(model, x, y, attack, eps, seed=0) -> float:
    prediction = robust_predict(model, x, y, attack, eps, torch.Generator().manual_seed(seed))
    return 100.0 * float((prediction == y).float().mean())


def test_standard_model_falls_to_about_zero_under_pgd_while_pgd_at_keeps_clearly_more(setup):
    models, (x, y) = setup
    pgd = build_attack("pgd_linf", steps=10, step_size=0.25)
    clean = {k: 100.0 * float((predict(m, x) == y).float().mean()) for k, m in models.items()}
    robust = {k: _accuracy(m, x, y, pgd, 0.2) for k, m in models.items()}
    assert clean["standard"] > 70 and clean["pgd_at"] > 60, clean
    assert robust["standard"] <= 5.0, robust  # about 0 % at a large eps
    assert robust["pgd_at"] >= robust["standard"] + 15.0, robust  # 3+ binomial SEs at n = 200


BOTH = {"early_stop": True, "skip_misclassified": True}
SHORTCUT_CASES = [
    ("pgd_linf", {"steps": 10}, 0.1, ({"skip_misclassified": True}, {"early_stop": True}, BOTH)),
    ("cw_linf", {"steps": 10}, 0.1, (BOTH,)),
    ("mim", {"steps": 10}, 0.1, (BOTH,)),
    ("pgd_l2", {"steps": 10}, 1.5, (BOTH,)),
    ("pgd_l1", {"steps": 10}, 10.0, (BOTH,)),
]


@pytest.mark.parametrize("name,params,eps,variants", SHORTCUT_CASES)
def test_shortcuts_never_raise_robust_accuracy(setup, name, params, eps, variants):
    models, (x, y) = setup
    x, y = x[:100], y[:100]
    for model in models.values():
        plain = evaluate_attack(model, x, y, build_attack(name, **params), eps, _seeded())
        for options in variants:
            attack = build_attack(name, **params, **options)
            fast = evaluate_attack(model, x, y, attack, eps, _seeded())
            assert fast.robust_accuracy <= plain.robust_accuracy, (name, options)
            assert fast.backward <= plain.backward  # and they never cost more
            assert float(fast.perturbation.max()) <= eps + 1e-6


def test_evaluation_sanity_checks_hold_on_the_adversarially_trained_model(setup):
    models, (x, y) = setup
    model = models["pgd_at"]
    x, y = x[:100], y[:100]
    clean = 100.0 * float((predict(model, x) == y).float().mean())
    pgd = build_attack("pgd_linf", steps=10)
    assert _accuracy(model, x, y, pgd, 0.0) == clean  # eps 0 reproduces clean accuracy
    budgets = (0.05, 0.1, 0.2, 0.3)
    by_eps = dict(zip(budgets, (_accuracy(model, x, y, pgd, eps) for eps in budgets), strict=True))
    ordered = list(by_eps.values())
    assert all(b <= a + 1.0 for a, b in zip(ordered, ordered[1:], strict=False)), by_eps
    assert by_eps[0.3] < by_eps[0.05] - 20.0, by_eps  # accuracy falls with eps
    assert _accuracy(model, x, y, pgd, 0.5) <= 10.0  # a huge budget: chance or below
    fgsm = build_attack("fgsm")
    for eps in (0.1, 0.3):  # iterative beats single-step
        assert by_eps[eps] <= _accuracy(model, x, y, fgsm, eps), eps
    stronger = build_attack("pgd_linf", steps=20, restarts=2)
    assert _accuracy(model, x, y, stronger, 0.2) <= by_eps[0.2] + 1.0  # more steps: not higher
    noise = random_noise_examples(x, 0.2, "linf", _seeded())
    noise_accuracy = 100.0 * float((predict(model, noise) == y).float().mean())
    assert noise_accuracy >= by_eps[0.2] + 15.0  # random noise hurts far less than PGD
    aa = build_attack("autoattack", version="custom", attacks=["apgd-ce"])
    apgd = _accuracy(model, x, y, aa, 0.2)
    assert apgd <= by_eps[0.2] + 1.0  # AutoAttack's APGD-CE at least as strong as PGD
    square = _accuracy(model, x, y, build_attack("square", n_queries=100), 0.2)
    assert apgd <= square + 2.0  # white-box beats black-box (2 examples of slack)
    for probe in (
        input_gradient_stats(model, x, y),
        forward_is_deterministic(model, x),
        outputs_look_like_logits(model, x),
    ):
        assert probe.passed, probe
        assert float(probe) == 0.0 and probe.n == len(x)
