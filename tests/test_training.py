"""Training loop: schedules, techniques, checkpoint/resume identical to an uninterrupted run."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.models import build_model
from robustlab.registry import UnknownNameError
from robustlab.training.loop import TrainConfig, fit, learning_rate
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


def test_techniques_registry():
    assert {"standard", "pgd_at"} <= set(technique_names())
    with pytest.raises(UnknownNameError, match="pgd_at"):
        build_technique("trades_plus")
    with pytest.raises(ValueError, match="eps"):
        build_technique("pgd_at", eps=2.0)


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
    assert set(history[0]) == {
        "epoch",
        "lr",
        "train_loss",
        "train_accuracy",
        "val_accuracy",
        "val_pgd_accuracy",
        "seconds",
    }
    assert history[-1]["val_accuracy"] > 50.0  # chance is 33 %


def test_killed_run_resumes_to_weights_identical_to_an_uninterrupted_run(tmp_path):
    train, val = _data(64, 0), _data(30, 1)
    technique = build_technique("pgd_at", eps=0.1, steps=2)
    config = TrainConfig(**CONFIG)

    reference = _model()
    full = fit(reference, train, val, technique, config, seed=3, progress=False)

    class Killed(Exception):
        pass

    def kill_after_epoch(epoch: int) -> None:
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
    drop = ("seconds",)
    strip = [{k: v for k, v in row.items() if k not in drop} for row in full]
    assert [{k: v for k, v in row.items() if k not in drop} for row in resumed] == strip
