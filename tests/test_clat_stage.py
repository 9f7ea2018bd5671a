"""stages.train --snapshot-epoch, then stages.clat from that snapshot, end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from robustlab.data.images import ImageSet, write_images
from robustlab.models.store import load_model
from stages.clat import init_weights_path
from tests import background
from tests.stage_cli import stage_command, stage_env

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = {"epochs": 2, "batch_size": 20, "lr": 0.05, "val_pgd_steps": 2, "amp": "none"}
CLAT_CONFIG = {
    "epochs": 2,
    "lam": 0.1,
    "k": 1,
    "reselect_every": 1,
    "selection": "dynamic",
    "fast": False,
    "eps": 0.1,
    "steps": 2,
    "step_size": 0.5,
    "lr": 0.01,
    "criticality_batch": 16,
}


def _table(path):
    rng = np.random.default_rng(0)
    labels = np.arange(72) % 3
    images = (rng.random((72, 8, 8, 1)) * 80).astype(np.uint8)
    images[labels == 0, :3] += 150
    images[labels == 1, 5:] += 150
    write_images(
        ImageSet(images, labels.astype(np.int16), np.arange(72), ["a", "b", "c"], "x"), path
    )


def _run(module, *args, cwd):
    cmd = [*stage_command(module), *map(str, args), "--no-progress"]
    done = subprocess.run(
        cmd, cwd=cwd, env=stage_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done


@background.build("clat_stage_runs")
def _clat_stage_runs(tmp: Path) -> dict:
    """PGD-AT with a snapshot after epoch 1 of 2, then CLAT from it, by the stages' commands."""
    repo_root = REPO
    table = tmp / "train.parquet"
    _table(table)
    base = tmp / "models" / "toy" / "small_cnn" / "pgd_at"
    common = ["--train", table, "--dataset", "toy", "--arch", "small_cnn", "--val-size", 12]
    common += ["--seed", 0, "--threads", 1]
    _run(
        "train",
        *common,
        "--arch-config",
        json.dumps({"width": 4, "hidden": 8}),
        "--technique",
        "pgd_at",
        "--technique-config",
        json.dumps({"eps": 0.1, "steps": 2}),
        "--train-config",
        json.dumps(TRAIN_CONFIG),
        "--snapshot-epoch",
        1,
        "--out-dir",
        base,
        cwd=repo_root,
    )
    out = tmp / "models" / "toy" / "small_cnn" / "pgd_at+clat"
    crit = tmp / "results" / "toy" / "small_cnn" / "pgd_at+clat" / "criticality.parquet"
    _run(
        "clat",
        *common,
        "--init-dir",
        base,
        "--init-epoch",
        1,
        "--pretrain-technique",
        "pgd_at",
        "--clat-config",
        json.dumps(CLAT_CONFIG),
        "--train-config",
        json.dumps(TRAIN_CONFIG),
        "--out-dir",
        out,
        "--criticality-out",
        crit,
        cwd=repo_root,
    )
    return {"base": base, "out": out, "crit": crit, "common": common, "table": table, "tmp": tmp}


@pytest.fixture(scope="module")
def clat_stage_runs() -> dict:
    return background.result("clat_stage_runs")


def test_train_writes_the_snapshot_and_removes_its_checkpoint(clat_stage_runs):
    base = clat_stage_runs["base"]
    assert sorted(p.name for p in base.iterdir()) == [
        "card.json",
        "history.parquet",
        "model.safetensors",
        "pretrain_snapshot.safetensors",
    ]
    card = json.loads((base / "card.json").read_text())
    assert card["snapshot_epochs"] == [1] and card["technique_config"]["eps"] == 0.1
    snap, final = (
        load_file(str(base / "pretrain_snapshot.safetensors")),
        load_file(str(base / "model.safetensors")),
    )
    assert snap.keys() == final.keys()
    assert any(not torch.equal(snap[k], final[k]) for k in snap)


def test_clat_history_continues_the_pretraining_history(clat_stage_runs):
    before = pd.read_parquet(clat_stage_runs["base"] / "history.parquet")
    history = pd.read_parquet(clat_stage_runs["out"] / "history.parquet")
    assert history["epoch"].tolist() == [1, 2, 3]
    shared = [c for c in before.columns if c != "seconds"]
    pd.testing.assert_frame_equal(history.loc[:0, shared], before.loc[:0, shared])
    assert history["selected_layers"].isna().tolist() == [True, False, False]
    assert json.loads(history["selected_layers"].iloc[-1])[0] in range(1, 5)
    assert history["trainable_params"].iloc[0] > history["trainable_params"].iloc[-1]


def test_clat_card_weights_and_criticality_table(clat_stage_runs):
    out = clat_stage_runs["out"]
    assert not (out / "checkpoint.safetensors").exists()
    card = json.loads((out / "card.json").read_text())
    assert card["technique"] == "pgd_at+clat" and card["pretrain_epoch"] == 1
    # candidates: small_cnn's two main-path convolutions (the classifier's Linears are out)
    assert card["clat_config"]["k"] == 1 and card["layers"] == 2
    assert card["candidate_layers"] == ["net.features.0", "net.features.3"]
    assert card["lam"] == card["technique_config"]["lam"]
    sizes = {1: 1 * 4 * 9 + 4, 2: 4 * 8 * 9 + 8}
    assert card["trainable_params"] == sizes[card["selected_layers"][0]]
    assert card["trainable_params"] < card["params"]
    load_model(out / "model.safetensors")  # loadable with its own card
    table = pd.read_parquet(clat_stage_runs["crit"])
    assert list(table.columns) == [
        "epoch",
        "layer_index",
        "layer_name",
        "weakness",
        "criticality",
        "selected",
    ]
    schema = pq.read_schema(clat_stage_runs["crit"])
    assert [str(t) for t in schema.types] == [
        "int64",
        "int64",
        "string",
        "double",
        "double",
        "bool",
    ]
    assert sorted(set(table["epoch"])) == [2, 3] and len(table) == 4
    assert table.groupby("epoch")["selected"].sum().tolist() == [1, 1]


def test_clat_starts_from_the_snapshot_or_the_final_weights(clat_stage_runs):
    base = clat_stage_runs["base"]
    snapshot = base / "pretrain_snapshot.safetensors"
    assert init_weights_path(base, 1, 2, [1]) == snapshot
    assert init_weights_path(base, 2, 2, [1]) == base / "model.safetensors"
    with pytest.raises(SystemExit, match="outside"):
        init_weights_path(base, 3, 2, [1])
    # a snapshot the card says was taken after another epoch is never used
    with pytest.raises(SystemExit, match="taken after epoch"):
        init_weights_path(base, 1, 3, [2])
    snapshot.rename(base / "moved.safetensors")
    try:
        with pytest.raises(SystemExit, match="--snapshot-epoch 1"):
            init_weights_path(base, 1, 2, [1])
    finally:
        (base / "moved.safetensors").rename(snapshot)


class _Killed(Exception):
    """Stands for a SIGKILL of the training job."""


def test_a_training_killed_after_its_snapshot_epoch_still_writes_the_snapshot(
    clat_stage_runs, tmp_path, monkeypatch
):
    # the fixture's pgd_at training (snapshot after epoch 1 of 2), killed right after the
    # checkpoint of epoch 1, its outputs deleted as Snakemake does, then rerun: it resumes at
    # epoch 2 and must still write the snapshot of epoch 1, equal to the uninterrupted run's
    import stages.train
    from robustlab.training import loop

    out = tmp_path / "pgd_at"
    argv = [*map(str, clat_stage_runs["common"]), "--out-dir", str(out), "--no-progress"]
    argv += ["--arch-config", json.dumps({"width": 4, "hidden": 8}), "--technique", "pgd_at"]
    argv += ["--technique-config", json.dumps({"eps": 0.1, "steps": 2})]
    argv += ["--train-config", json.dumps(TRAIN_CONFIG), "--snapshot-epoch", "1"]
    save = loop.save_checkpoint

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise _Killed

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        stages.train.main(argv)
    assert (out / "checkpoint.safetensors").exists()
    for name in ("pretrain_snapshot.safetensors", "model.safetensors", "card.json"):
        (out / name).unlink(missing_ok=True)  # what Snakemake removes before the rerun
    monkeypatch.setattr(loop, "save_checkpoint", save)
    stages.train.main(argv)
    assert sorted(p.name for p in out.iterdir()) == [
        "card.json",
        "history.parquet",
        "model.safetensors",
        "pretrain_snapshot.safetensors",
    ]
    for name in ("pretrain_snapshot.safetensors", "model.safetensors"):
        got, expected = load_file(str(out / name)), load_file(str(clat_stage_runs["base"] / name))
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in got), name
