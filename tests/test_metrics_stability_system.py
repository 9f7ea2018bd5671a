"""Flip probability / flip rate and system-noise metrics on hand-computed tables, and the
stages.evaluate CLI on perturbation and system-noise tables end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.evaluation import predict
from robustlab.metrics.stability import (
    flip_probabilities,
    flip_probability_metrics,
    flip_rate_metrics,
    sequence_flips,
)
from robustlab.metrics.system import population_std, system_metrics
from robustlab.models import build_model
from robustlab.models.store import load_model, model_spec, save_weights
from stages import evaluate as evaluate_stage
from stages import perturb as perturb_stage
from stages import system_noise as system_stage


def sequences(perturbation: str, preds: dict[int, list[int]]) -> pd.DataFrame:
    rows = [
        (perturbation, index, frame, p)
        for index, seq in preds.items()
        for frame, p in enumerate(seq)
    ]
    return pd.DataFrame(rows, columns=["perturbation", "index", "frame", "prediction"])


# rotate (schedule: consecutive frames): A [1,1,2,2] -> 1/3, B [0,1,0,1] -> 3/3: FP = 2/3
# gaussian_noise (noise: frame j vs frame 0): C [3,3,3,3] -> 0, D [3,1,1,1] -> 3/3: FP = 1/2
#   (the consecutive rule would give D 1/3 and FP 1/6)
MODEL = pd.concat(
    [
        sequences("rotate", {0: [1, 1, 2, 2], 1: [0, 1, 0, 1]}),
        sequences("gaussian_noise", {0: [3, 3, 3, 3], 1: [3, 1, 1, 1]}),
    ],
    ignore_index=True,
)
# baseline: rotate [0,0,0,0] -> 0, [0,1,1,1] -> 1/3: FP = 1/6; gaussian [2,2,2,2] -> 0,
# [2,0,0,2] -> 2/3: FP = 1/3. FR rotate = 100 (2/3)/(1/6) = 400, FR gaussian = 100 (1/2)/(1/3)
# = 150, mFR = 275.
BASELINE = pd.concat(
    [
        sequences("rotate", {0: [0, 0, 0, 0], 1: [0, 1, 1, 1]}),
        sequences("gaussian_noise", {0: [2, 2, 2, 2], 1: [2, 0, 0, 2]}),
    ],
    ignore_index=True,
)


def values(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(r.noise, r.metric): r.value for r in frame.itertuples(index=False)}


def test_sequence_flips_both_definitions() -> None:
    preds = np.array([[3, 1, 1, 1], [1, 1, 2, 2]])
    np.testing.assert_allclose(sequence_flips(preds, noise=True), [1.0, 2 / 3])
    np.testing.assert_allclose(sequence_flips(preds, noise=False), [1 / 3, 1 / 3])


def test_flip_probability_hand_computed() -> None:
    rows = flip_probability_metrics(MODEL)
    assert list(rows.columns) == ["noise", "level", "metric", "value", "n"]
    got = values(rows)
    assert got[("rotate", "flip_probability")] == pytest.approx(200 / 3)
    assert got[("gaussian_noise", "flip_probability")] == pytest.approx(50.0)
    assert got[("all_perturbations", "mean_flip_probability")] == pytest.approx((200 / 3 + 50) / 2)
    assert rows["level"].isna().all()
    # n: sequences per perturbation, distinct images (0 and 1) for the mean, not 2 + 2.
    assert rows.set_index("noise")["n"].to_dict() == {
        "gaussian_noise": 2,
        "rotate": 2,
        "all_perturbations": 2,
    }
    # An image in one perturbation only counts once more: images 0, 1, 5.
    more = pd.concat([MODEL, sequences("rotate", {5: [1, 1, 1, 1]})], ignore_index=True)
    assert flip_probability_metrics(more).set_index("noise")["n"]["all_perturbations"] == 3


def test_flip_probability_ignores_row_order_and_uses_the_named_noise_kinds() -> None:
    shuffled = MODEL.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(
        flip_probability_metrics(shuffled), flip_probability_metrics(MODEL)
    )
    # treating gaussian_noise as a schedule gives the consecutive-frame value (0 + 1/3) / 2
    fp = flip_probabilities(MODEL, noise_perturbations=[]).set_index("perturbation")["fp"]
    assert fp["gaussian_noise"] == pytest.approx(100 / 6)


def test_flip_rate_hand_computed() -> None:
    got = values(flip_rate_metrics(MODEL, BASELINE))
    assert got[("rotate", "flip_rate")] == pytest.approx(400.0)
    assert got[("gaussian_noise", "flip_rate")] == pytest.approx(150.0)
    assert got[("all_perturbations", "mfr")] == pytest.approx(275.0)
    self_rates = values(flip_rate_metrics(MODEL, MODEL))
    assert self_rates[("all_perturbations", "mfr")] == pytest.approx(100.0)


def test_flip_rate_compares_the_sequences_both_runs_have() -> None:
    # The baseline also has rotate image 2 ([0,1,0,1]: FP 1) and the model gaussian_noise image 7
    # ([1,2,2,2]: 3/3). Unjoined, FR rotate would be 100 (2/3) / ((0 + 1/3 + 1) / 3) = 150 and FR
    # gaussian 100 ((0 + 1 + 1) / 3) / (1/3) = 200; joined on images 0 and 1 they stay 400 and 150.
    base = pd.concat([BASELINE, sequences("rotate", {2: [0, 1, 0, 1]})], ignore_index=True)
    model = pd.concat([MODEL, sequences("gaussian_noise", {7: [1, 2, 2, 2]})], ignore_index=True)
    rows = flip_rate_metrics(model, base)
    got = values(rows)
    assert got[("rotate", "flip_rate")] == pytest.approx(400.0)
    assert got[("gaussian_noise", "flip_rate")] == pytest.approx(150.0)
    assert got[("all_perturbations", "mfr")] == pytest.approx(275.0)
    assert rows.set_index("noise")["n"].to_dict() == {
        "gaussian_noise": 2,
        "rotate": 2,
        "all_perturbations": 2,
    }
    # No shared image at all: no rows, nothing invented.
    assert flip_rate_metrics(sequences("rotate", {9: [1, 2]}), BASELINE).empty


def test_flip_rate_zero_baseline_is_nan_and_only_shared_perturbations_count() -> None:
    stable = sequences("rotate", {0: [1, 1, 1, 1], 1: [2, 2, 2, 2]})
    got = values(flip_rate_metrics(MODEL, stable))
    assert math.isnan(got[("rotate", "flip_rate")]) and math.isnan(
        got[("all_perturbations", "mfr")]
    )
    assert ("gaussian_noise", "flip_rate") not in got


def test_flip_probability_errors() -> None:
    with pytest.raises(ValueError, match="lack column.*prediction"):
        flip_probability_metrics(MODEL.drop(columns="prediction"))
    with pytest.raises(ValueError, match="index 0 frame 1 appears twice for 'rotate'"):
        flip_probability_metrics(pd.concat([MODEL, MODEL.iloc[[1]]]))
    gap = MODEL[
        ~((MODEL["perturbation"] == "rotate") & (MODEL["frame"] == 3) & (MODEL["index"] == 1))
    ]
    with pytest.raises(ValueError, match="image index 1 for 'rotate' does not have frames 0..L-1"):
        flip_probability_metrics(gap)
    late = MODEL.assign(frame=MODEL["frame"] + 1)
    with pytest.raises(ValueError, match="does not have frames 0..L-1"):
        flip_probability_metrics(late)
    with pytest.raises(KeyError, match="unknown perturbation 'wobble'"):
        flip_probability_metrics(sequences("wobble", {0: [1, 1]}))


def system_outcomes() -> pd.DataFrame:
    # a: 3/4 correct = 75 %, b: 2/4 = 50 %, c: 4/4 = 100 %; mean 75, population std
    # sqrt((0 + 625 + 625) / 3) = 20.4124 (the sample std would be 25)
    correct = {"a": [1, 1, 1, 0], "b": [1, 0, 1, 0], "c": [1, 1, 1, 1]}
    rows = [(v, i, bool(c)) for v, cs in correct.items() for i, c in enumerate(cs)]
    return pd.DataFrame(rows, columns=["variant", "index", "correct"])


def test_system_metrics_hand_computed() -> None:
    rows = system_metrics(system_outcomes())
    got = values(rows)
    assert got[("a", "accuracy")] == 75.0 and got[("b", "accuracy")] == 50.0
    assert got[("c", "accuracy")] == 100.0
    assert got[("all_variants", "mean_accuracy")] == pytest.approx(75.0)
    assert got[("all_variants", "std_accuracy")] == pytest.approx(math.sqrt(1250 / 3))
    assert got[("all_variants", "nsd")] == pytest.approx(-math.sqrt(1250 / 3))
    # n: the 4 distinct images behind every variant, not 3 variants x 4 images.
    assert rows.set_index(["noise", "metric"])["n"][("all_variants", "nsd")] == 4
    assert rows.set_index(["noise", "metric"])["n"][("a", "accuracy")] == 4
    assert rows["level"].isna().all()


def test_population_std() -> None:
    assert population_std(np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])) == 2.0
    assert population_std(np.array([80.0])) == 0.0
    assert math.isnan(population_std(np.array([])))


def test_system_metrics_errors() -> None:
    with pytest.raises(ValueError, match="lack column.*variant"):
        system_metrics(system_outcomes().drop(columns="variant"))
    doubled = pd.concat([system_outcomes(), system_outcomes().iloc[[0]]])
    with pytest.raises(ValueError, match="index 0 appears twice for variant 'a'"):
        system_metrics(doubled)


# --- stages.evaluate end to end -----------------------------------------------------------------


def model_dir(tmp_path, size: int = 8, channels: int = 3):
    torch.manual_seed(0)
    spec = model_spec("small_cnn", 2, channels, size, [0.5] * channels, [0.25] * channels, {})
    spec["arch_config"] = {"width": 4, "hidden": 8}
    model = build_model(
        "small_cnn", 2, channels, size, mean=spec["mean"], std=spec["std"], width=4, hidden=8
    )
    folder = tmp_path / "models" / "d" / "small_cnn" / "standard"
    folder.mkdir(parents=True)
    save_weights(model, folder / "model.safetensors")
    (folder / "card.json").write_text(json.dumps(spec))
    return folder


def prepared(tmp_path, size: int = 8) -> ImageSet:
    rng = np.random.default_rng(1)
    clean = ImageSet(
        images=rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8),
        labels=np.array([0, 1, 0, 1], np.int16),
        index=np.array([3, 1, 2, 0], np.int64),
        class_names=["a", "b"],
    )
    write_images(clean, tmp_path / "test.parquet")
    return clean


def test_evaluate_on_perturbation_tables(tmp_path) -> None:
    folder = model_dir(tmp_path)
    prepared(tmp_path)
    tables = []
    for name in ("rotate", "gaussian_noise"):
        out = tmp_path / "noisy" / f"{name}.parquet"
        perturb_stage.main(
            ["--input", str(tmp_path / "test.parquet"), "--perturbation", name]
            + ["--length", "3", "--seed", "0", "--out", str(out)]
        )
        tables.append(str(out))
    result = tmp_path / "results" / "perturbation.parquet"
    evaluate_stage.main(
        ["--model-dir", str(folder), "--table", str(result), *tables, "--batch-size", "5"]
        + ["--no-progress"]
    )
    frame = pq.read_table(result).to_pandas()
    assert list(frame.columns) == [
        "perturbation",
        "frame",
        "magnitude",
        "index",
        "label",
        "prediction",
        "correct",
    ]
    assert len(frame) == 2 * 4 * 3
    assert str(frame["prediction"].dtype) == "int16" and frame["correct"].dtype == bool

    model = load_model(folder / "model.safetensors")
    expected = []
    for path in tables:
        x, _ = read_images(path).tensors()
        expected.append(predict(model, x).numpy())
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), np.concatenate(expected))
    assert (frame["correct"] == (frame["prediction"] == frame["label"])).all()

    rows = flip_probability_metrics(frame)  # the evaluator's output feeds the metric directly
    assert set(rows["noise"]) == {"rotate", "gaussian_noise", "all_perturbations"}
    assert rows["value"].between(0, 100).all()


def test_evaluate_on_a_system_table(tmp_path) -> None:
    folder = model_dir(tmp_path)
    prepared(tmp_path)
    table = tmp_path / "noisy" / "system.parquet"
    system_stage.main(
        ["--input", str(tmp_path / "test.parquet"), "--stored-size", "16", "--format", "jpeg"]
        + ["--out", str(table)]
    )
    result = tmp_path / "system.parquet"
    evaluate_stage.main(
        ["--model-dir", str(folder), "--table", str(result), str(table), "--no-progress"]
    )
    frame = pq.read_table(result).to_pandas()
    assert list(frame.columns)[:3] == ["variant", "decoder", "resize"]
    assert len(frame) == 12 * 4
    rows = system_metrics(frame)
    assert len(rows) == 12 + 3


def test_evaluate_errors(tmp_path, capsys) -> None:
    folder = model_dir(tmp_path)
    prepared(tmp_path)
    rotate = tmp_path / "rotate.parquet"
    perturb_stage.main(
        ["--input", str(tmp_path / "test.parquet"), "--perturbation", "rotate", "--length", "2"]
        + ["--seed", "0", "--out", str(rotate)]
    )
    system = tmp_path / "system.parquet"
    system_stage.main(
        ["--input", str(tmp_path / "test.parquet"), "--stored-size", "8", "--format", "png"]
        + ["--out", str(system)]
    )
    out = tmp_path / "out.parquet"
    base = ["--model-dir", str(folder), "--no-progress", "--table", str(out)]
    with pytest.raises(SystemExit, match="system.parquet has extra columns"):
        evaluate_stage.main([*base, str(rotate), str(system)])
    with pytest.raises(SystemExit, match="nothing.parquet: no such image table"):
        evaluate_stage.main([*base, str(tmp_path / "nothing.parquet")])
    with pytest.raises(SystemExit, match="2"):  # argparse's usage error
        evaluate_stage.main([*base, str(rotate), "--batch-size", "0"])
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    big = model_dir(wrong, size=16)
    with pytest.raises(SystemExit, match="images are 8x8x3 but the model expects 16x16x3"):
        evaluate_stage.main(
            ["--model-dir", str(big), "--table", str(out), str(rotate), "--no-progress"]
        )
    assert not out.exists()
    evaluate_stage.main([*base, str(rotate)])  # the same call on tables of one kind succeeds
    assert len(pq.read_table(out)) == 4 * 2
