"""CLAT as the paper defines it: candidate layers, k, the scaled schedule, lambda calibration,
loss terms in the history, the loop reuse, the stated variants, and the default grid's
selections."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from robustlab.models import build_model
from robustlab.training.clat import (
    ClatConfig,
    ClatObjective,
    calibrate_lambda,
    candidate_modules,
    criticality_batch,
    fit_clat,
    forward_order_layers,
    layer_count,
    layer_distances,
    measure_criticality,
    scaled_period,
    select_layers,
)
from robustlab.training.config import TrainConfig
from robustlab.training.loop import fit
from robustlab.training.strategy import TrainingStrategy
from robustlab.training.techniques import build_technique
from tests.test_clat import _data

REPO = Path(__file__).resolve().parents[1]


def _names(model: nn.Module, size: int = 8, channels: int = 1) -> list[str]:
    x = torch.rand(2, channels, size, size)
    return [layer.name for layer in forward_order_layers(model, x)]


def test_wrn_candidates_are_main_path_convolutions_without_shortcuts_or_head():
    model = build_model("wrn", 3, 1, 8, depth=10, widen_factor=1)
    names = _names(model)
    all_convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    # WRN-10-1: stem + 3 blocks x 2 convs = 7 main-path convolutions; the 2 shortcuts of the
    # blocks that change width (16 -> 32 -> 64; the first keeps 16) are out
    assert len(names) == 7 and len(all_convs) == 9
    assert not any("shortcut" in n for n in names)
    assert all(isinstance(dict(model.named_modules())[n], nn.Conv2d) for n in names)
    everything = [
        layer.name for layer in forward_order_layers(model, torch.rand(1, 1, 8, 8), "all")
    ]
    assert len(everything) == 10 and isinstance(
        dict(model.named_modules())[everything[-1]], nn.Linear
    )


def test_robust_resnet_candidates_leave_out_se_shortcut_and_classifier():
    model = build_model("robust_resnet", 3, 1, 8, depths=(1, 1, 1), widths=(1, 1, 1), scales=4)
    names = _names(model)
    # per block conv1, 3 hierarchical convs (scales 4), conv2 = 5; 3 blocks + stem = 16
    assert len(names) == 16
    assert not any(".se." in n or "shortcut" in n or n.endswith("fc") for n in names)
    conv = [name for name, _ in candidate_modules(model, "conv")]
    assert len(conv) == 16 + 3  # every block changes width: 3 projection shortcuts
    linear_se = [name for name, _ in candidate_modules(model, "all") if ".se." in name]
    assert len(linear_se) == 6  # fc1 and fc2 of the residual SE of each block


def test_vit_without_main_convolutions_takes_its_mlp_linears():
    model = build_model("vit_tiny", 3, 1, 8, depth=2)
    names = _names(model)
    assert names == [
        "net.blocks.0.mlp.0",
        "net.blocks.0.mlp.2",
        "net.blocks.1.mlp.0",
        "net.blocks.1.mlp.2",
    ]


def test_unknown_candidate_set_is_an_error():
    with pytest.raises(ValueError, match="select_from"):
        candidate_modules(nn.Linear(2, 2), "linear")
    with pytest.raises(ValueError, match="no candidate layer"):
        forward_order_layers(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.rand(1, 4))


def test_weakness_chain_runs_along_the_candidates():
    # conv_a (1 -> 1 channel, weight 2) -> shortcut-named conv (weight 10) -> conv_b (weight 3)
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_a = nn.Conv2d(1, 1, 1, bias=False)
            self.shortcut = nn.Conv2d(1, 1, 1, bias=False)
            self.conv_b = nn.Conv2d(1, 1, 1, bias=False)
            for conv, w in ((self.conv_a, 2.0), (self.shortcut, 10.0), (self.conv_b, 3.0)):
                nn.init.constant_(conv.weight, w)

        def forward(self, x):
            return self.conv_b(self.shortcut(self.conv_a(x))).flatten(1)

    model = Net()
    layers = forward_order_layers(model, torch.rand(1, 1, 1, 1))
    assert [layer.name for layer in layers] == ["conv_a", "conv_b"]
    x, y = torch.full((2, 1, 1, 1), 0.5), torch.zeros(2, dtype=torch.long)
    weakness, criticality = measure_criticality(
        model, [layer.module for layer in layers], x, y, 0.1, 2, 0.5, torch.Generator()
    )
    # one output logit: the input moves by at most eps; F_a moves 2 |d|, F_b 60 |d|, so
    # C_b = W_b / W_a = 30 whatever delta is (the shortcut's factor 10 is inside the chain)
    assert criticality[1] == pytest.approx(30.0, rel=1e-5)
    assert criticality[0] == pytest.approx(weakness[0])


def test_k_rounds_up_with_at_least_one_layer():
    assert layer_count(0.05, 1) == 1
    assert layer_count(0.05, 20) == 1  # exactly 1.0
    assert layer_count(0.05, 21) == 2  # 1.05 rounded up
    assert layer_count(0.1, 9) == 1
    with pytest.raises(ValueError, match="positive"):
        layer_count(0, 5)


def test_reselection_period_is_scaled_from_fifty_epochs_every_ten():
    assert [scaled_period(e) for e in (1, 3, 10, 50, 100)] == [1, 1, 2, 10, 20]
    assert (
        ClatConfig(epochs=50).period == 10 and ClatConfig(epochs=50, reselect_every=3).period == 3
    )
    with pytest.raises(ValueError, match="reselect_every"):
        ClatConfig(reselect_every=0)


def test_each_reselection_draws_a_fresh_batch():
    x, y = torch.arange(100.0).view(100, 1), torch.zeros(100, dtype=torch.long)
    first, _ = criticality_batch((x, y), 10, 0, 6)
    again, _ = criticality_batch((x, y), 10, 0, 6)
    later, _ = criticality_batch((x, y), 10, 0, 8)
    assert torch.equal(first, again) and not torch.equal(first, later)


class _Scale(nn.Module):
    """logits = (w * x, 0): one linear layer with a hand-computable CE and feature distance."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1, bias=False)
        nn.init.constant_(self.layer.weight, 2.0)

    def forward(self, x):
        z = self.layer(x)
        return torch.cat([z, torch.zeros_like(z)], dim=1)


def test_lambda_calibration_arithmetic_on_a_stub():
    model = _Scale()
    x, y = torch.full((4, 1), 0.5), torch.ones(4, dtype=torch.long)
    objective = ClatObjective([model.layer], lam=math.nan, eps=0.1, steps=3, step_size=0.5)
    lam, ce, feature = calibrate_lambda(objective, model, x, y, torch.Generator().manual_seed(0))
    # clean logits (1, 0), label 1: CE = log(1 + e) = 1.31326; the feature ascent reaches the
    # ball's edge, |F(x + delta) - F(x)| = 2 x 0.1 = 0.2; lam = CE / L_C = 6.5663
    assert ce == pytest.approx(math.log(1 + math.e), rel=1e-6)
    assert feature == pytest.approx(0.2, rel=1e-5)
    assert lam == pytest.approx(math.log(1 + math.e) / 0.2, rel=1e-5)
    assert lam * feature == pytest.approx(ce)
    flat = ClatObjective([model.layer], lam=math.nan, eps=0.1, steps=1, step_size=0.5)
    nn.init.constant_(model.layer.weight, 0.0)
    with pytest.raises(ValueError, match="lam: auto"):
        calibrate_lambda(flat, model, x, y)


def test_relative_feature_loss_divides_by_the_clean_norm():
    clean, perturbed = [torch.tensor([[3.0, 4.0]])], [torch.tensor([[3.0, 5.0]])]
    assert float(layer_distances(clean, perturbed)) == pytest.approx(1.0)
    assert float(layer_distances(clean, perturbed, relative=True)) == pytest.approx(0.2)


def test_cross_entropy_on_clean_or_adversarial_input():
    model = _Scale()
    x, y = torch.full((2, 1), 0.5), torch.ones(2, dtype=torch.long)
    x_adv = torch.full((2, 1), 0.6)
    clean = ClatObjective([model.layer], lam=0.0, eps=0.1, steps=1, step_size=1.0)
    adv = ClatObjective([model.layer], 0.0, 0.1, 1, 1.0, ce_on="adversarial")
    # logits (1, 0) and (1.2, 0), label 1: CE log(1 + e) and log(1 + e^1.2)
    assert float(clean.terms(model, x, y, x_adv)[0].detach()) == pytest.approx(math.log(1 + math.e))
    assert float(adv.terms(model, x, y, x_adv)[0].detach()) == pytest.approx(
        math.log(1 + math.exp(1.2))
    )
    with pytest.raises(ValueError, match="ce_on"):
        ClatConfig(ce_on="both")
    with pytest.raises(ValueError, match="feature_loss"):
        ClatConfig(feature_loss="cosine")
    with pytest.raises(ValueError, match="bn"):
        ClatConfig(bn="adaptive")
    with pytest.raises(ValueError, match="lam"):
        ClatConfig(lam="half")


CONFIG = TrainConfig(batch_size=16, val_pgd_steps=2, amp="none")


def test_loss_terms_and_calibrated_lambda_are_in_the_history():
    torch.manual_seed(0)
    model = build_model("preact_resnet18", 3, 1, 8, base_width=2)
    clat = ClatConfig(epochs=2, eps=0.1, steps=2, criticality_batch=16, calibration_batch=8)
    result = fit_clat(model, _data(32, 0), _data(12, 1), clat, CONFIG, 0, progress=False)
    assert result.calibration is not None and result.calibration["images"] == 8
    assert result.lam == pytest.approx(
        result.calibration["ce"] / result.calibration["feature_loss"]
    )
    for row in result.history:
        assert row["lam"] == result.lam
        assert row["train_weighted_feature_loss"] == pytest.approx(
            row["lam"] * row["train_feature_loss"]
        )
        # the loss is CE + lam L_C step by step, so its epoch mean is the sum of the means
        assert row["train_loss"] == pytest.approx(
            row["train_ce"] + row["train_weighted_feature_loss"], rel=1e-5
        )
    fixed = ClatConfig(**{**clat.__dict__, "lam": 0.5, "epochs": 1})
    torch.manual_seed(0)
    model = build_model("preact_resnet18", 3, 1, 8, base_width=2)
    result = fit_clat(model, _data(32, 0), _data(12, 1), fixed, CONFIG, 0, progress=False)
    assert result.calibration is None and result.history[0]["lam"] == 0.5


def test_a_plain_strategy_trains_exactly_as_fit_without_one():
    def run(strategy):
        torch.manual_seed(0)
        model = build_model("small_cnn", 3, 1, 8, width=4, hidden=8)
        technique = build_technique("pgd_at", eps=0.1, steps=2)
        config = TrainConfig(epochs=2, batch_size=16, val_pgd_steps=2, amp="none", ema_decay=0.5)
        history = fit(
            model,
            _data(32, 0),
            _data(12, 1),
            technique,
            config,
            3,
            progress=False,
            strategy=strategy,
        )
        return model.state_dict(), [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    (plain, h1), (hooked, h2) = run(None), run(TrainingStrategy())
    assert h1 == h2
    assert all(torch.equal(plain[k], hooked[k]) for k in plain)


def _default_grid():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    options = params["architectures"]
    return params["grid"]["architectures"], options, params["techniques"]["pgd_at+clat"]


@pytest.mark.parametrize("arch", _default_grid()[0])
def test_default_grid_selects_only_main_path_layers_and_at_most_ten_percent(arch):
    _, options, clat_options = _default_grid()
    torch.manual_seed(0)
    model = build_model(arch, 10, 1, 28, **options.get(arch, {}))
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    layers = forward_order_layers(model, x, clat_options["select_from"])
    count = layer_count(clat_options["k"], len(layers))
    weakness, criticality = measure_criticality(
        model, [layer.module for layer in layers], x, y, 0.1, 2, 0.5, torch.Generator()
    )
    total = sum(p.numel() for p in model.parameters())
    transformer = arch.startswith("vit")
    chosen = select_layers("dynamic", criticality, count, None)
    trained = sum(layers[i].params for i in chosen)
    assert 0 < trained <= 0.10 * total, (arch, trained, total)
    for i in chosen:
        module = layers[i].module
        assert isinstance(module, nn.Linear if transformer else nn.Conv2d), layers[i].name
        assert "shortcut" not in layers[i].name and ".se." not in layers[i].name


def test_layers_above_the_trainable_share_are_never_selected() -> None:
    from types import SimpleNamespace

    from torch import nn

    from robustlab.training.clat.criticality import eligible_layers, select_layers

    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 1))  # 110 + 11 = 121 parameters
    layers = [SimpleNamespace(params=110), SimpleNamespace(params=11)]
    # 10 % of 121 is 12.1: only the second layer (11 parameters) may be fine-tuned
    assert eligible_layers(layers, model, 0.1) == [1]
    assert eligible_layers(layers, model, 1.0) == [0, 1]
    # the first layer is the most critical, but not eligible
    assert select_layers("dynamic", [5.0, 1.0], 1, None, eligible=[1]) == [1]
    with pytest.raises(ValueError, match="no candidate layer holds at most 5%"):
        eligible_layers(layers, model, 0.05)
    with pytest.raises(ValueError, match=r"max_trainable_share must be in \(0, 1\]"):
        eligible_layers(layers, model, 0.0)
