"""Training loop: schedules, optimizers, modifiers, checkpoint/resume identical to an
uninterrupted run (plain and with EMA), snapshots."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from robustlab.models import build_model
from robustlab.registry import UnknownNameError
from robustlab.training.config import TrainConfig
from robustlab.training.ema import EMA
from robustlab.training.loop import fit, learning_rate
from robustlab.training.optim import build_optimizer
from robustlab.training.techniques import build_technique, technique_names


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    x[:, :, :3] += (y == 0).float().view(-1, 1, 1, 1) * 0.6  # learnable class signal
    x[:, :, 5:] += (y == 1).float().view(-1, 1, 1, 1) * 0.6
    return x.clamp(0, 1), y


def _model():
    torch.manual_seed(0)
    return build_model("small_cnn", 3, 1, 8, width=4, hidden=8)


CONFIG = dict(epochs=3, batch_size=16, lr=0.05, val_pgd_eps=0.1, val_pgd_steps=2, amp="none")
HISTORY_COLUMNS = {
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "train_adv_accuracy",
    "val_accuracy",
    "val_pgd_accuracy",
    "trainable_params",
    "seconds",
}


def test_learning_rate_schedules():
    cosine = TrainConfig(epochs=10, lr=0.1, schedule="cosine")
    assert learning_rate(cosine, 0.0) == pytest.approx(0.1)
    assert learning_rate(cosine, 0.5) == pytest.approx(0.05)
    assert learning_rate(cosine, 1.0) == pytest.approx(0.0, abs=1e-12)
    steps = TrainConfig(epochs=10, lr=0.1, schedule="multistep", milestones=(0.5, 0.75), gamma=0.1)
    assert [learning_rate(steps, p) for p in (0.1, 0.5, 0.8)] == pytest.approx([0.1, 0.01, 0.001])
    warm = TrainConfig(epochs=10, lr=0.1, schedule="constant", warmup_epochs=2)
    assert learning_rate(warm, 0.1) == pytest.approx(0.05)
    assert math.isclose(learning_rate(warm, 0.3), 0.1)


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp16")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=-0.1)
    assert TrainConfig(milestones=[0.3]).milestones == (0.3,)  # JSON lists become tuples


def test_techniques_registry():
    assert {"standard", "pgd_at", "trades", "mart", "fast_at", "awp"} <= set(technique_names())
    with pytest.raises(UnknownNameError, match="pgd_at"):
        build_technique("trades_plus")
    with pytest.raises(ValueError, match="eps"):
        build_technique("pgd_at", eps=2.0)
    with pytest.raises(TypeError, match="beta"):
        build_technique("pgd_at", beta=1.0)


def test_optimizer_choice_and_weight_decay_groups():
    model = build_model("preact_resnet18", 3, 1, 8, base_width=2)
    sgd = build_optimizer(model, TrainConfig())
    assert isinstance(sgd, torch.optim.SGD) and not sgd.param_groups[0]["nesterov"]
    nesterov = build_optimizer(model, TrainConfig(optimizer="sgd_nesterov"))
    assert nesterov.param_groups[0]["nesterov"]
    assert build_optimizer(model, TrainConfig(nesterov=True)).param_groups[0]["nesterov"]
    adamw = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    decay, no_decay = adamw.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])  # conv and linear weights only
    assert all(p.ndim == 1 for p in no_decay["params"])  # biases and batch-norm parameters
    model.net.fc.weight.requires_grad_(False)  # frozen parameters never reach the optimizer
    ids = {id(p) for g in build_optimizer(model, TrainConfig()).param_groups for p in g["params"]}
    assert id(model.net.fc.weight) not in ids


def test_ema_update_formula_is_exact():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(5.0)
    ema.update(model)  # 1 + 0.25 * (5 - 1)
    assert ema.model.weight.item() == 2.0
    ema.update(model)  # 2 + 0.25 * (5 - 2)
    assert ema.model.weight.item() == 2.75
    frozen = torch.nn.Linear(3, 3)
    ema = EMA(frozen, decay=0.999)
    for _ in range(5):
        ema.update(frozen)  # an unchanged weight stays bit-identical
    assert torch.equal(ema.model.weight, frozen.weight)


@pytest.mark.parametrize("technique", [("standard", {}), ("pgd_at", {"eps": 0.1, "steps": 2})])
def test_history_has_one_row_per_epoch_and_training_learns(technique):
    train, val = _data(96, 0), _data(30, 1)
    config = TrainConfig(**{**CONFIG, "epochs": 6, "lr": 0.1})
    history = fit(
        _model(),
        train,
        val,
        build_technique(technique[0], **technique[1]),
        config,
        seed=0,
        progress=False,
    )
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert set(history[0]) == HISTORY_COLUMNS
    assert history[-1]["val_accuracy"] > 50.0  # chance is 33 %
    assert history[-1]["trainable_params"] == sum(p.numel() for p in _model().parameters())
    adversarial = technique[0] != "standard"
    assert math.isnan(history[-1]["train_adv_accuracy"]) != adversarial


def test_validation_pgd_runs_on_a_fixed_subset(monkeypatch):
    import robustlab.training.loop as loop

    sizes = []
    real = loop.robust_predict

    def spy(model, x, *args, **kwargs):
        sizes.append(len(x))
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(loop, "robust_predict", spy)
    config = TrainConfig(**{**CONFIG, "epochs": 1, "val_pgd_size": 12})
    fit(
        _model(), _data(32, 0), _data(30, 1), build_technique("standard"), config, 0, progress=False
    )
    assert sizes == [12]


def _resume_matches(tmp_path, technique, config):
    train, val = _data(64, 0), _data(30, 1)
    reference = _model()
    full = fit(reference, train, val, technique, config, seed=3, progress=False)

    class Killed(Exception):
        pass

    def kill_after_epoch(epoch: int, _weights) -> None:
        if epoch == 2:
            raise Killed

    checkpoint = tmp_path / "checkpoint.safetensors"
    with pytest.raises(Killed):
        fit(
            _model(),
            train,
            val,
            technique,
            config,
            seed=3,
            checkpoint=checkpoint,
            progress=False,
            on_epoch_end=kill_after_epoch,
        )
    assert checkpoint.exists()

    torch.manual_seed(123)  # a fresh process would not share the first run's global RNG
    resumed_model = _model()
    resumed = fit(
        resumed_model, train, val, technique, config, seed=3, checkpoint=checkpoint, progress=False
    )
    for (name, a), (_, b) in zip(
        reference.state_dict().items(), resumed_model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(
        pd.DataFrame(full).drop(columns="seconds"), pd.DataFrame(resumed).drop(columns="seconds")
    )


def test_killed_run_resumes_to_weights_identical_to_an_uninterrupted_run(tmp_path):
    _resume_matches(tmp_path, build_technique("pgd_at", eps=0.1, steps=2), TrainConfig(**CONFIG))


def test_resume_with_ema_and_mixing_is_identical(tmp_path):
    config = TrainConfig(
        **CONFIG, ema_decay=0.9, mixup_alpha=0.4, cutmix_alpha=0.4, label_smoothing=0.1
    )
    _resume_matches(tmp_path, build_technique("trades", eps=0.1, steps=1), config)


def test_a_checkpoint_of_other_inputs_is_not_resumed(tmp_path, capsys):
    train, val = _data(32, 0), _data(30, 1)
    checkpoint = tmp_path / "checkpoint.safetensors"
    technique = build_technique("standard")
    fit(_model(), train, val, technique, TrainConfig(**CONFIG), 0, checkpoint, progress=False)
    other = TrainConfig(**{**CONFIG, "lr": 0.01})
    history = fit(_model(), train, val, technique, other, 0, checkpoint, progress=False)
    assert len(history) == 3 and "starting afresh" in capsys.readouterr().err


def test_ema_weights_are_validated_and_kept(tmp_path):
    train, val = _data(32, 0), _data(30, 1)
    seen = {}

    def record(epoch, weights):
        seen[epoch] = {k: v.clone() for k, v in weights.state_dict().items()}

    model = _model()
    config = TrainConfig(**{**CONFIG, "epochs": 2, "ema_decay": 0.5})
    fit(
        model,
        train,
        val,
        build_technique("standard"),
        config,
        0,
        progress=False,
        on_epoch_end=record,
    )
    plain = _model()
    fit(
        plain,
        train,
        val,
        build_technique("standard"),
        TrainConfig(**{**CONFIG, "epochs": 2}),
        0,
        progress=False,
    )
    for name, value in model.state_dict().items():
        assert torch.equal(value, seen[2][name]), name  # the model ends with the EMA weights
    assert not torch.equal(model.net.classifier[1].weight, plain.net.classifier[1].weight)


@pytest.mark.parametrize("name", ["trades", "mart", "fast_at", "awp"])
def test_every_technique_trains_with_channels_last_and_bf16(name):
    config = TrainConfig(**{**CONFIG, "epochs": 1, "amp": "bf16", "channels_last": True})
    params = {"eps": 0.1} if name == "fast_at" else {"eps": 0.1, "steps": 1}
    history = fit(
        _model(),
        _data(32, 0),
        _data(30, 1),
        build_technique(name, **params),
        config,
        0,
        progress=False,
    )
    assert all(math.isfinite(history[0][k]) for k in ("train_loss", "train_adv_accuracy"))


def test_bn_and_bias_weight_decay_is_a_switch():
    from robustlab.training.optim import parameter_groups

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    # conv weight 18 decayed; conv bias 2, BN weight 2 and bias 2 exempt by default
    default = parameter_groups(model, 0.1)
    assert [sum(p.numel() for p in g["params"]) for g in default] == [18, 6]
    assert [g["weight_decay"] for g in default] == [0.1, 0.0]
    every = parameter_groups(model, 0.1, bn_bias_weight_decay=True)
    assert [sum(p.numel() for p in g["params"]) for g in every] == [24, 0]
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.1, bn_bias_weight_decay=True))
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == 24
