"""CLAT: layer order, Eq. 5-6 by hand, selection, freezing, schedule, resume."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from robustlab.models import build_model
from robustlab.training.clat import (
    ClatConfig,
    ClatObjective,
    criticality_indices,
    feature_weakness,
    fit_clat,
    forward_order_layers,
    freeze_all_but,
    is_selection_epoch,
    layer_count,
    measure_criticality,
    select_layers,
    top_k,
)
from robustlab.training.config import TrainConfig


class _Toy(nn.Module):
    """Modules defined in another order than they run; one is never called."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.conv_b = nn.Conv2d(2, 2, 1)
        self.unused = nn.Linear(3, 3)
        self.conv_a = nn.Conv2d(1, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return self.head(self.conv_b(self.bn(self.conv_a(x))).flatten(1))


def test_layers_are_candidate_modules_in_forward_order():
    layers = forward_order_layers(_Toy(), torch.rand(2, 1, 2, 2), "all")
    assert [(layer.index, layer.name) for layer in layers] == [
        (1, "conv_a"),
        (2, "conv_b"),
        (3, "head"),
    ]
    main = forward_order_layers(_Toy(), torch.rand(2, 1, 2, 2))
    assert [(layer.index, layer.name) for layer in main] == [(1, "conv_a"), (2, "conv_b")]
    small = build_model("small_cnn", 3, 1, 8, width=4, hidden=8)
    names = [layer.name for layer in forward_order_layers(small, torch.rand(1, 1, 8, 8), "all")]
    assert names == ["net.features.0", "net.features.3", "net.classifier.1", "net.classifier.3"]
    names = [layer.name for layer in forward_order_layers(small, torch.rand(1, 1, 8, 8))]
    assert names == ["net.features.0", "net.features.3"]


def test_weakness_and_criticality_formulas_by_hand():
    clean = [torch.zeros(2, 2), torch.zeros(2, 1, 2, 2)]
    perturbed = [torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.full((2, 1, 2, 2), 1.0)]
    weakness = feature_weakness(clean, perturbed)
    assert weakness == pytest.approx([(5.0 + 0.0) / 2 / 2, (2.0 + 2.0) / 2 / 4])
    assert criticality_indices([2.0, 1.0, 4.0]) == [2.0, 0.5, 4.0]
    assert criticality_indices([0.0, 1.0, 0.0]) == [0.0, math.inf, 0.0]


def test_measured_criticality_of_a_linear_network_matches_the_hand_computation():
    first, second = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        second.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, -1.0]]))
    model = nn.Sequential(first, second)
    x = torch.tensor([[0.5, 0.4], [0.3, 0.6], [0.6, 0.5]])
    y = torch.zeros(3, dtype=torch.long)
    # For label 0 the input gradient of the cross-entropy points along -W^T (1, -1) = (-3, -2)
    # for every input, so PGD ends at delta = (-eps, -eps); F_1 moves by (-eps, -2 eps) and
    # F_2 by (-3 eps, 2 eps).
    eps = 0.1
    weakness, criticality = measure_criticality(
        model,
        [first, second],
        x,
        y,
        eps,
        steps=4,
        step_size=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    w1, w2 = eps * math.sqrt(5) / 2, eps * math.sqrt(13) / 2
    assert weakness == pytest.approx([w1, w2], rel=1e-5)
    assert criticality == pytest.approx([w1, w2 / w1], rel=1e-5)


def test_top_k_by_count_and_fraction():
    crit = [0.5, 3.0, 1.0, 3.0, 2.0]
    assert top_k(crit, 2) == [1, 3]  # ties go to the earlier layer
    assert layer_count(2, 40) == 2
    assert layer_count(0.05, 40) == 2 and layer_count(0.05, 4) == 1
    # rounded up: 0.05 x 33 = 1.65 -> 2, 0.05 x 49 = 2.45 -> 3; 0.05 x 120 = 6.000000000000001
    # in floating point stays 6
    assert [layer_count(0.05, n) for n in (17, 33, 49, 69, 120)] == [1, 2, 3, 4, 6]
    with pytest.raises(ValueError, match="whole number"):
        layer_count(2.5, 40)
    with pytest.raises(ValueError, match="asks for"):
        layer_count(6, 5)
    assert select_layers("dynamic", crit, 3, previous=[0]) == [1, 3, 4]


def test_static_keeps_and_random_draws_layers():
    crit = [0.5, 3.0, 1.0, 3.0, 2.0]
    assert select_layers("static", crit, 2, previous=None) == [1, 3]
    assert select_layers("static", [9.0, 0, 0, 0, 0], 2, previous=[1, 3]) == [1, 3]
    draws = {
        tuple(select_layers("random", crit, 2, None, torch.Generator().manual_seed(s)))
        for s in range(20)
    }
    assert len(draws) > 3 and all(len(set(d)) == 2 and list(d) == sorted(d) for d in draws)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert select_layers("random", crit, 2, None, g1) == select_layers("random", crit, 2, None, g2)
    with pytest.raises(ValueError, match="selection"):
        select_layers("greedy", crit, 2, None)


def test_reselection_schedule_follows_algorithm_one():
    assert [e for e in range(1, 31) if is_selection_epoch(e, 10)] == [1, 11, 21]
    assert [e for e in range(1, 4) if is_selection_epoch(e, 1)] == [1, 2, 3]


def test_objective_with_lambda_zero_is_clean_cross_entropy():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, 1, 8, width=4, hidden=8).train()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    layers = [layer.module for layer in forward_order_layers(model, x)]
    objective = ClatObjective(layers[:2], lam=0.0, eps=0.1, steps=2, step_size=0.5)
    loss, _ = objective.loss(model, x, y, torch.Generator().manual_seed(0))
    assert torch.equal(loss, nn.functional.cross_entropy(model(x), y))
    full = ClatObjective(layers[:2], lam=1.0, eps=0.1, steps=2, step_size=0.5)
    assert full.loss(model, x, y, torch.Generator().manual_seed(0))[0] > loss


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    x[:, :, :3] += (y == 0).float().view(-1, 1, 1, 1) * 0.6
    x[:, :, 5:] += (y == 1).float().view(-1, 1, 1, 1) * 0.6
    return x.clamp(0, 1), y


def _pretrained():
    torch.manual_seed(0)
    return build_model("preact_resnet18", 3, 1, 8, base_width=2)


CONFIG = TrainConfig(batch_size=16, val_pgd_steps=2, amp="none", weight_decay=5e-3)
CLAT = ClatConfig(epochs=3, k=2, lam=0.1, reselect_every=2, eps=0.1, steps=2, criticality_batch=16)


def test_frozen_parameters_and_statistics_stay_bit_identical():
    model = _pretrained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit_clat(model, _data(48, 0), _data(12, 1), CLAT, CONFIG, seed=0, progress=False)
    selected = {result.layers[i].name for i in result.selection}
    assert len(selected) == 2
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.rsplit(".", 1)[0] in selected for k in changed), changed
    assert result.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert result.trainable_params == sum(result.layers[i].params for i in result.selection)
    assert [row["trainable_params"] for row in result.history][-1] == result.trainable_params


def test_history_and_criticality_rows():
    result = fit_clat(
        _pretrained(), _data(48, 0), _data(12, 1), CLAT, CONFIG, 0, progress=False, epoch_offset=5
    )
    assert [row["epoch"] for row in result.history] == [6, 7, 8]
    table = pd.DataFrame(result.criticality)
    assert sorted(set(table["epoch"])) == [6, 8]  # CLAT epochs 1 and 3 with R = 2
    n_layers = len(result.layers)
    assert len(table) == 2 * n_layers
    assert list(table[table["epoch"] == 6]["layer_index"]) == list(range(1, n_layers + 1))
    assert table.groupby("epoch")["selected"].sum().tolist() == [2, 2]
    first = table[table["epoch"] == 6]
    assert first["criticality"].iloc[0] == first["weakness"].iloc[0]
    assert "selected_layers" in result.history[0] and "selected_criticality" in result.history[0]


def test_killed_clat_run_resumes_identically(tmp_path):
    train, val = _data(48, 0), _data(12, 1)
    config = TrainConfig(**{**CONFIG.__dict__, "ema_decay": 0.5})
    clat = ClatConfig(**{**CLAT.__dict__, "selection": "random"})
    reference = _pretrained()
    full = fit_clat(reference, train, val, clat, config, 0, progress=False, epoch_offset=1)

    class Killed(Exception):
        pass

    def kill(epoch, _weights):
        if epoch == 3:  # CLAT epoch 2: resume continues a selection window
            raise Killed

    checkpoint = tmp_path / "checkpoint.safetensors"
    with pytest.raises(Killed):
        fit_clat(
            _pretrained(),
            train,
            val,
            clat,
            config,
            0,
            checkpoint,
            progress=False,
            epoch_offset=1,
            on_epoch_end=kill,
        )
    torch.manual_seed(99)
    resumed_model = _pretrained()
    resumed = fit_clat(
        resumed_model, train, val, clat, config, 0, checkpoint, progress=False, epoch_offset=1
    )
    for (name, a), (_, b) in zip(
        reference.state_dict().items(), resumed_model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(full.history).drop(columns=drop),
        pd.DataFrame(resumed.history).drop(columns=drop),
    )
    assert full.criticality == resumed.criticality and full.selection == resumed.selection


def test_freeze_all_but_leaves_only_the_given_modules_trainable():
    model = _Toy()
    freeze_all_but(model, [model.conv_b])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "conv_b.weight",
        "conv_b.bias",
    ]


def test_fast_clat_runs_with_channels_last_and_bf16():
    config = TrainConfig(**{**CONFIG.__dict__, "amp": "bf16", "channels_last": True})
    clat = ClatConfig(**{**CLAT.__dict__, "epochs": 1, "fast": True, "selection": "static"})
    model = _pretrained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit_clat(model, _data(32, 0), _data(12, 1), clat, config, 0, progress=False)
    assert math.isfinite(result.history[0]["train_loss"])
    selected = {result.layers[i].name for i in result.selection}
    for name, value in model.state_dict().items():
        if name.rsplit(".", 1)[0] not in selected:
            assert torch.equal(value, before[name]), name


def test_selection_from_every_convolution_or_every_layer():
    crit = [0.5, 3.0, 1.0, 9.0, 2.0]
    assert top_k(crit, 2, eligible=[0, 1, 2, 4]) == [1, 4]
    assert select_layers("dynamic", crit, 1, None, eligible=[0, 2]) == [2]
    for seed in range(10):
        drawn = select_layers("random", crit, 2, None, torch.Generator().manual_seed(seed), [0, 2])
        assert drawn == [0, 2]
    clat = ClatConfig(**{**CLAT.__dict__, "epochs": 1, "k": 1, "select_from": "conv"})
    result = fit_clat(_pretrained(), _data(32, 0), _data(12, 1), clat, CONFIG, 0, progress=False)
    assert isinstance(result.layers[result.selection[0]].module, nn.Conv2d)
    assert any("shortcut" in layer.name for layer in result.layers)
    clat = ClatConfig(**{**CLAT.__dict__, "epochs": 1, "k": 1, "select_from": "all"})
    result = fit_clat(_pretrained(), _data(32, 0), _data(12, 1), clat, CONFIG, 0, progress=False)
    assert result.layers[-1].name.endswith("fc") or isinstance(result.layers[-1].module, nn.Linear)
    with pytest.raises(ValueError, match="select_from"):
        ClatConfig(select_from="linear")
