"""The judged prediction is strict fp32 and examples an attack counted as fooled are re-confirmed
by it; AutoAttack records the stage that fooled each point, so its Square stage is checked
against its white-box stages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustlab.evaluation import evaluate_attack, predict
from robustlab.io import write_frame
from robustlab.metrics.sanity import square_stage_rows, tolerance, unconfirmed_fooled
from robustlab.noise.adversarial import AutoAttack
from robustlab.outcome_tables import outcome_frame
from stages.sanity import attack_stages


class PrecisionSensitive(nn.Module):
    """Logits that favour class 1 under reduced float32 matmul precision (as TF32 or bf16
    numerics can flip a borderline example) and class 0 in full fp32."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = torch.get_float32_matmul_precision() != "highest"
        scores = torch.tensor([0.0, 1.0] if reduced else [1.0, 0.0])
        return scores.expand(len(x), 2) + 0 * self.weight + 0 * x.flatten(1)[:, :1]


def identity_attack(model, x, y, eps, generator=None):
    return x.clone()


def test_predict_is_strict_fp32_and_restores_the_settings() -> None:
    model = PrecisionSensitive()
    x = torch.rand(4, 1, 2, 2)
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("medium")
    try:
        assert predict(model, x).tolist() == [0, 0, 0, 0]  # fp32 verdict despite "medium"
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before[0])
    assert torch.backends.cudnn.allow_tf32 == before[1]


def test_a_fooled_verdict_in_reduced_precision_is_not_confirmed_in_fp32() -> None:
    model = PrecisionSensitive()
    x = torch.rand(6, 1, 2, 2)
    y = torch.zeros(6, dtype=torch.int64)  # class 0 is right
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # crafting in reduced precision
    try:
        outcome = evaluate_attack(model, x, y, identity_attack, 0.1)
    finally:
        torch.set_float32_matmul_precision(previous)
    # the attack saw class 1 (fooled) on all 6, the fp32 judgement class 0 (correct)
    assert outcome.attack_prediction.tolist() == [1] * 6
    assert outcome.prediction.tolist() == [0] * 6 and outcome.robust_accuracy == 100.0
    frame = outcome_frame(
        "identity", 1, 0.1, np.arange(6), np.zeros(6, dtype=np.int64), np.zeros(6), outcome, "linf"
    )
    assert unconfirmed_fooled(frame) == (6, 6)
    assert set(frame["fooled_by"]) == {""}  # not an attack made of stages
    # crafted in fp32 as well: the verdicts agree
    agreed = evaluate_attack(model, x, y, identity_attack, 0.1)
    assert agreed.attack_prediction.tolist() == [0] * 6


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


class Quantised(nn.Module):
    """Input quantisation: all-zero input gradients (gradient masking); Square still works."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


def _autoattack_frame(model: nn.Module, eps: float) -> tuple[pd.DataFrame, AutoAttack]:
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:4] = (y[:4] + 1) % 10  # four points misclassified before any attack
    attack = AutoAttack(version="custom", attacks=["apgd-ce", "square"], n_queries=100)
    outcome = evaluate_attack(model, x, y, attack, eps, torch.Generator().manual_seed(0))
    labels = y.numpy()
    clean = predict(model, x).numpy()
    frame = outcome_frame("autoattack", 1, eps, np.arange(24), labels, clean, outcome, "linf")
    return frame, attack


def test_autoattack_names_the_stage_that_fooled_each_point() -> None:
    frame, attack = _autoattack_frame(_model(), 0.1)
    assert attack.stage_names == ["apgd-ce", "square"]
    assert set(frame["fooled_by"]) <= {"", "apgd-ce", "square"}
    named = frame["fooled_by"] != ""
    # a stage is named exactly for the points correct before and fooled after (CPU: the
    # crafting-time and fp32 verdicts agree); never for the four misclassified points
    clean_ok = frame["clean_prediction"] == frame["label"]
    assert (named == (clean_ok & ~frame["correct"])).all()
    assert not named.iloc[:4].any() and named.any()
    assert unconfirmed_fooled(frame) == (0, int((~frame["correct"]).sum()))


def test_square_stage_row_from_a_real_run_on_masked_gradients() -> None:
    frame, attack = _autoattack_frame(Quantised(_model()).eval(), 0.2)
    by_square = int((frame["fooled_by"] == "square").sum())
    standing = int(frame["correct"].sum())
    assert by_square > 0 and "square_beats_white_box" in attack.flags  # pyautoattack agrees
    (row,) = square_stage_rows(frame, {"autoattack": attack.stage_names}, 2.0)
    # white-box accuracy counts Square's points as correct: (standing + by_square) / 24
    assert row["value"] == pytest.approx(100.0 * by_square / 24)
    assert row["threshold"] == pytest.approx(
        tolerance(100.0 * (standing + by_square) / 24, 24, 100.0 * standing / 24, 24, 2.0)
    )
    assert row["passed"] == (row["value"] <= row["threshold"])


def test_sanity_stage_reads_the_stages_stored_with_the_outcomes(tmp_path) -> None:
    frame = pd.DataFrame({"attack": ["x"], "index": [0]})
    folder = tmp_path / "adversarial"
    stages = ["apgd-ce", "apgd-t", "fab-t", "square"]
    write_frame(frame, folder / "autoattack.parquet", {"attack_stages": json.dumps(stages)})
    write_frame(frame, folder / "pgd_linf.parquet")
    assert attack_stages(tmp_path, ["autoattack", "pgd_linf"]) == {"autoattack": stages}
