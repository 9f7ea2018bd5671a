"""Label smoothing, mixup and cutmix targets."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from robustlab.training.config import TrainConfig
from robustlab.training.targets import (
    cutmix,
    hard_labels,
    mixup,
    smooth_one_hot,
    training_targets,
)


def test_label_smoothing_on_a_hand_case():
    target = smooth_one_hot(torch.tensor([1]), 4, 0.2)
    assert torch.allclose(target, torch.tensor([[0.05, 0.85, 0.05, 0.05]]))
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0]])
    log_p = F.log_softmax(logits, 1)[0]
    expected = -(0.85 * log_p[1] + 0.05 * (log_p[0] + log_p[2] + log_p[3]))
    assert F.cross_entropy(logits, target).item() == pytest.approx(expected.item(), abs=1e-6)
    assert F.cross_entropy(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([1]), label_smoothing=0.2).item(), abs=1e-6
    )


def test_targets_are_unchanged_without_modifiers():
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    out_x, out_y = training_targets(x, y, TrainConfig(), 3, torch.Generator())
    assert out_x is x and out_y is y


def test_mixup_is_a_convex_combination_and_deterministic_per_generator():
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    mixed, perm, lam = mixup(x, torch.Generator().manual_seed(7), 0.4)
    again, perm2, lam2 = mixup(x, torch.Generator().manual_seed(7), 0.4)
    assert torch.equal(mixed, again) and torch.equal(perm, perm2) and lam == lam2
    assert 0.0 <= lam <= 1.0
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])
    other = mixup(x, torch.Generator().manual_seed(8), 0.4)[2]
    assert other != lam


def test_cutmix_pastes_a_box_whose_area_matches_lambda():
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, :, :] = torch.arange(4).view(4, 1, 1, 1).float()  # each image one constant value
    mixed, perm, lam = cutmix(x, torch.Generator().manual_seed(3), 1.0)
    again = cutmix(x, torch.Generator().manual_seed(3), 1.0)
    assert torch.equal(mixed, again[0]) and lam == again[2]
    for i in range(4):
        if perm[i] != i:
            kept = (mixed[i] == i).float().mean().item()
            assert kept == pytest.approx(lam)


def test_mixed_targets_sum_to_one_and_follow_the_mixing():
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    for config in (
        TrainConfig(mixup_alpha=0.5),
        TrainConfig(cutmix_alpha=0.5, label_smoothing=0.1),
        TrainConfig(mixup_alpha=0.5, cutmix_alpha=0.5),
    ):
        mx, target = training_targets(x, y, config, 3, torch.Generator().manual_seed(1))
        mx2, target2 = training_targets(x, y, config, 3, torch.Generator().manual_seed(1))
        assert torch.equal(mx, mx2) and torch.equal(target, target2)
        assert target.shape == (6, 3)
        assert torch.allclose(target.sum(1), torch.ones(6))
        assert hard_labels(target).shape == (6,)


def test_both_mixers_are_used_when_both_are_on():
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    config = TrainConfig(mixup_alpha=1.0, cutmix_alpha=1.0)
    kinds = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        mixed, _ = training_targets(x, y, config, 3, g)
        changed = (mixed != x).flatten(1).float().mean(1)
        kinds.add("mixup" if bool((changed > 0.9).any()) else "cutmix")
    assert kinds == {"mixup", "cutmix"}
