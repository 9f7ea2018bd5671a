"""A small, complete pipeline output tree written by the tests themselves (no real training),
shared by the report tests: metrics computed by the library from hand-made per-example
outcomes, transfer and sanity tables, model cards, histories, CLAT criticality tables and a
prepared test table. The tests at the end check the tree itself.

Per run, image ``i`` of ``N`` (label ``i % 10``) is classified correctly when ``i >= c`` (the
run's offset ``c``), so clean accuracy is ``100 (N - c) / N``; an attack at eps level ``j`` keeps
image ``i`` when also ``i >= c + drop * j``, a corruption at severity ``s`` when ``i >= c + s``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from robustlab.io import write_frame, write_json
from robustlab.metrics.stability import flip_probability_metrics, flip_rate_metrics
from robustlab.metrics.table import (
    METRICS_COLUMNS,
    RunOutcomes,
    finalize_metrics,
    run_metrics,
    write_metrics,
)

N = 20
DATASET = "fashion_mnist"
EPS = (0.02, 0.05, 0.1)
ATTACKS = {"fgsm": 2, "pgd_linf": 3}  # attack -> accuracy drop (images) per eps level
AUTOATTACK_DROP = 4
CORRUPTIONS = ("gaussian_noise", "fog", "spatter")  # two ImageNet-C ones and an extra
SEVERITIES = (1, 2, 3)
PERTURBATIONS = ("gaussian_noise", "translate")
VARIANTS = ("pil-pil_bilinear", "pil-opencv_area", "opencv-pil_bilinear")
CHECKSUM = "ab" * 32
EVIL = "<script>alert(1)</script>"

# name -> (family, options with the registered `arch`, params, macs)
FULL_ARCHS = {
    "rrn_d1-1-1_w1-1-1_k3_r24": (
        "cnn",
        {
            "arch": "robust_resnet",
            "depths": [1, 1, 1],
            "widths": [1, 1, 1],
            "kernel_size": 3,
            "input_resolution": 24,
        },
        90_000,
        9_000_000,
    ),
    "rrn_d2-2-1_w1-1-1_k5_r28": (
        "cnn",
        {
            "arch": "robust_resnet",
            "depths": [2, 2, 1],
            "widths": [1, 1, 1],
            "kernel_size": 5,
            "input_resolution": 28,
            "block": "basic",
            "se": "none",
        },
        60_000,
        15_000_000,
    ),
    "rrn_d1-2-2_w1-1-1_k3_r28": (
        "cnn",
        {
            "arch": "robust_resnet",
            "depths": [1, 2, 2],
            "widths": [1, 1, 1],
            "kernel_size": 3,
            "input_resolution": 28,
        },
        120_000,
        19_000_000,
    ),
    "wrn_10_2": ("cnn", {"arch": "wrn_10_2"}, 303_000, 33_800_000),
    "vit_tiny": ("transformer", {"arch": "vit_tiny"}, 679_000, 36_100_000),
    "mlp_mixer_tiny": ("mlp", {"arch": "mlp_mixer_tiny"}, 586_000, 32_200_000),
}
FULL_TECHNIQUES = ("standard", "pgd_at")
CLAT_ARCHS = ("wrn_10_2", "vit_tiny")  # these also get pgd_at+clat
BASELINE = ("wrn_10_2", "standard")


@dataclass(frozen=True)
class Tree:
    """Where the written tree lies and what it holds."""

    root: Path
    runs: list[tuple[str, str, str]]
    archs: dict[str, dict]
    techniques: list[str]
    offsets: dict[tuple[str, str, str], int]

    @property
    def metrics(self) -> Path:
        return self.root / "results" / "metrics.parquet"

    def input_args(self) -> list[str]:
        """The input options of stages.figures / stages.report for this tree."""
        args = [
            "--metrics",
            str(self.metrics),
            "--models-dir",
            str(self.root / "models"),
            "--results-dir",
            str(self.root / "results"),
            "--attack-norm",
            "fgsm=linf",
            "--attack-norm",
            "pgd_linf=linf",
            "--attack-norm",
            "autoattack=linf",
        ]
        transfer = self.root / "results" / "transfer.parquet"
        if transfer.exists():
            args += ["--transfer", str(transfer)]
        for run in self.runs:
            args += ["--run", "/".join(run)]
        return args

    def report_args(self) -> list[str]:
        return [
            *self.input_args(),
            "--sanity",
            str(self.root / "results" / "sanity.parquet"),
            "--test-tables",
            str(self.root / "data" / "prepared" / DATASET / "test.parquet"),
            "--figures-dir",
            str(self.root / "figures"),
            "--git-revision",
            "abc123",
            "--params-hash",
            "h-42",
        ]


def _outcomes(c: int, drop: int, technique: str, eps_levels: int = 3) -> RunOutcomes:
    idx = np.arange(N, dtype=np.int64)
    label = (idx % 10).astype(np.int16)
    wrong = ((label + 1) % 10).astype(np.int16)
    clean_ok = idx >= c
    pred = np.where(clean_ok, label, wrong).astype(np.int16)
    clean = pd.DataFrame({"index": idx, "label": label, "prediction": pred, "correct": clean_ok})
    robust = 1 if technique != "standard" else 2  # adversarial training halves the drop
    adv = []
    for attack, strength in [*ATTACKS.items(), ("autoattack", AUTOATTACK_DROP)]:
        levels = [eps_levels] if attack == "autoattack" else range(1, eps_levels + 1)
        for level in levels:
            ok = clean_ok & (idx >= c + strength * level * robust // 2)
            adv.append(
                pd.DataFrame(
                    {
                        "attack": attack,
                        "norm": "linf",
                        "level": np.int16(level),
                        "eps": EPS[level - 1],
                        "index": idx,
                        "label": label,
                        "clean_prediction": pred,
                        "prediction": np.where(ok, label, wrong),
                        "correct": ok,
                        "forward_passes": 10 * N * level,
                        "backward_passes": 10 * N * level,
                    }
                )
            )
    natural = pd.concat(
        [
            pd.DataFrame(
                {
                    "corruption": corruption,
                    "severity": np.int16(s),
                    "index": idx,
                    "label": label,
                    "prediction": label,
                    "correct": idx >= c + s + k,
                }
            )
            for k, corruption in enumerate(CORRUPTIONS)
            for s in SEVERITIES
        ],
        ignore_index=True,
    )
    system = pd.concat(
        [
            pd.DataFrame(
                {
                    "variant": v,
                    "decoder": v.split("-")[0],
                    "resize": v.split("-")[1],
                    "index": idx,
                    "label": label,
                    "prediction": label,
                    "correct": idx >= c + (k % 2) + (drop % 2),
                }
            )
            for k, v in enumerate(VARIANTS)
        ],
        ignore_index=True,
    )
    return RunOutcomes(
        clean=clean,
        adversarial=pd.concat(adv, ignore_index=True),
        natural=natural,
        system=system,
    )


def _stability(c: int) -> pd.DataFrame:
    frames = []
    for p, name in enumerate(PERTURBATIONS):
        for frame in range(4):
            idx = np.arange(N, dtype=np.int64)
            flip = (idx + frame * (p + 1) + c) % 5 == 0
            frames.append(
                pd.DataFrame(
                    {
                        "perturbation": name,
                        "frame": np.int16(frame),
                        "index": idx,
                        "prediction": np.where(flip, 9, idx % 10).astype(np.int16),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _history(epochs: range, base: float, trainable: int) -> pd.DataFrame:
    e = np.array(list(epochs), dtype=np.int64)
    return pd.DataFrame(
        {
            "epoch": e,
            "lr": 0.1 / e,
            "train_loss": 2.0 / e,
            "train_accuracy": base + 5.0 * e,
            "train_adv_accuracy": base + 2.0 * e,
            "val_accuracy": base + 4.0 * e,
            "val_pgd_accuracy": base / 2 + 3.0 * e,
            "trainable_params": trainable,
            "seconds": 1.0,
        }
    )


def _criticality(epoch: int) -> pd.DataFrame:
    weakness = [0.01, 0.03, 0.02, 0.2, 0.05, 0.3, 0.04]
    crit = [weakness[0]] + [weakness[i] / weakness[i - 1] for i in range(1, len(weakness))]
    order = sorted(range(len(crit)), key=lambda i: -crit[i])
    return pd.DataFrame(
        {
            "epoch": np.int64(epoch),
            "layer_index": np.arange(1, 8, dtype=np.int64),
            "layer_name": [f"layer{i}" for i in range(1, 8)],
            "weakness": weakness,
            "criticality": crit,
            "selected": [i in order[:2] for i in range(7)],
        }
    )


def write_tree(
    root: Path,
    archs: dict | None = None,
    techniques: tuple[str, ...] = FULL_TECHNIQUES,
    clat_archs: tuple[str, ...] = CLAT_ARCHS,
    transfer: bool = True,
    failing: tuple[str, str] | None = ("wrn_10_2", "standard"),
) -> Tree:
    """Write the tree under ``root`` (results/, models/, data/prepared/) and describe it."""
    archs = FULL_ARCHS if archs is None else archs
    runs = [(DATASET, a, t) for a in archs for t in techniques]
    runs += [(DATASET, a, "pgd_at+clat") for a in clat_archs]
    runs.sort()
    offsets = {}
    outcomes, stability = {}, {}
    for i, run in enumerate(runs):
        arch_i = list(archs).index(run[1])
        t_i = ["standard", "pgd_at", "pgd_at+clat"].index(run[2])
        offsets[run] = 2 + arch_i % 3 + t_i
        outcomes[run] = _outcomes(offsets[run], i, run[2])
        stability[run] = _stability(offsets[run])
    base_run = (DATASET, *BASELINE) if (DATASET, *BASELINE) in runs else runs[0]
    frames = []
    for run in runs:
        family, options, params, macs = archs[run[1]]
        clat = run[2].endswith("+clat")
        card = {
            "dataset": DATASET,
            "arch": options["arch"],
            "arch_name": run[1],
            "arch_config": {k: v for k, v in options.items() if k != "arch"},
            "family": family,
            "technique": run[2],
            "params": params,
            "macs": macs,
            "trainable_params": params // 20 if clat else params,
            "seed": 0,
            "train_size": 900,
            "val_size": 100,
            "source_checksum": "cd" * 32,
            "image_size": 28,
            "train_config": {"val_pgd_eps": 0.1, "epochs": 3},
        }
        history = _history(range(1, 4), 30.0 + offsets[run], card["trainable_params"])
        if clat:
            card |= {
                "pretrain_epoch": 2,
                "pretrain_technique": "pgd_at",
                "clat_config": {"lam": 0.1, "k": 2, "epochs": 1, "selection": "dynamic"},
                "selected_layers": [6, 4],
                "selected_layer_names": ["layer6", "layer4"],
            }
            base = _history(range(1, 4), 30.0 + offsets[(DATASET, run[1], "pgd_at")], params)
            history = pd.concat([base[base["epoch"] <= 2], history[history["epoch"] == 3]])
            write_frame(_criticality(3), root / "results" / Path(*run) / "criticality.parquet")
        model_dir = root / "models" / Path(*run)
        write_json(card, model_dir / "card.json")
        write_frame(history.reset_index(drop=True), model_dir / "history.parquet")
        metrics = run_metrics(*run, outcomes[run], card, history, baseline=outcomes[base_run])
        flips = pd.concat(
            [
                flip_probability_metrics(stability[run], noise_perturbations=["gaussian_noise"]),
                flip_rate_metrics(
                    stability[run], stability[base_run], noise_perturbations=["gaussian_noise"]
                ),
            ]
        )
        flips = flips.assign(
            family="natural",
            dataset=run[0],
            arch=run[1],
            technique=run[2],
            ci_low=np.nan,
            ci_high=np.nan,
        )
        frames += [metrics, flips[METRICS_COLUMNS]]
    write_metrics(finalize_metrics(frames), root / "results" / "metrics.parquet")
    if transfer:
        rows = [
            (
                DATASET,
                s[1],
                s[2],
                t[1],
                t[2],
                attack,
                0.1,
                float((7 * i + 3 * j + k) % 60),
                10 + (i + j) % 5,
            )
            for k, attack in enumerate(ATTACKS)
            for i, s in enumerate(runs)
            for j, t in enumerate(runs)
        ]
        frame = pd.DataFrame(
            rows,
            columns=[
                "dataset",
                "source_arch",
                "source_technique",
                "target_arch",
                "target_technique",
                "attack",
                "eps",
                "asr",
                "n",
            ],
        )
        write_frame(frame, root / "results" / "transfer.parquet")
    checks = []
    for run in runs:
        fail = failing is not None and run[1:] == failing
        checks += [
            (
                *run,
                "eps_zero_reproduces_clean",
                True,
                0.0,
                0.0,
                "pgd_linf at eps 0: 15 vs clean 15 of 20 images correct",
            ),
            (*run, "budget_respected", True, 0.0, 1e-5, "largest perturbation over budget"),
            (
                *run,
                "standard_model_broken_by_pgd",
                not fail,
                40.0 if fail else 0.0,
                10.0,
                "standard training under pgd_linf at eps 0.1: 40.0 % on 20 images",
            ),
        ]
    sanity = pd.DataFrame(
        checks,
        columns=["dataset", "arch", "technique", "check", "passed", "value", "threshold", "detail"],
    )
    write_frame(sanity, root / "results" / "sanity.parquet")
    idx = np.arange(N, dtype=np.int64)
    test = pd.DataFrame(
        {"index": idx, "label": (idx % 10).astype(np.int16), "image": [bytes(28 * 28)] * N}
    )
    metadata = {
        "height": "28",
        "width": "28",
        "channels": "1",
        "source_checksum": CHECKSUM,
        "class_names": json.dumps([f"class {k}" for k in range(10)]),
    }
    write_frame(test, root / "data" / "prepared" / DATASET / "test.parquet", metadata)
    techniques_all = sorted({r[2] for r in runs})
    return Tree(root, runs, {a: archs[a][1] for a in archs}, techniques_all, offsets)


MINIMAL_ARCHS = {"small_cnn": ("cnn", {"arch": "small_cnn"}, 26_698, 307_648)}


def write_minimal_tree(root: Path) -> Tree:
    """One model, one technique, no transfer: the sections that need more are left out."""
    return write_tree(
        root, MINIMAL_ARCHS, ("standard",), clat_archs=(), transfer=False, failing=None
    )


def test_tree_metrics_follow_the_contract_and_the_offsets(tmp_path: Path) -> None:
    tree = write_tree(tmp_path)
    frame = pd.read_parquet(tree.metrics)
    assert list(frame.columns) == METRICS_COLUMNS
    assert {tuple(r) for r in frame[["dataset", "arch", "technique"]].values} == set(tree.runs)
    for run in tree.runs:
        rows = frame[
            (frame["arch"] == run[1])
            & (frame["technique"] == run[2])
            & (frame["family"] == "clean")
        ]
        assert rows["value"].tolist() == [100.0 * (N - tree.offsets[run]) / N]
    assert {"mce", "mfr", "nsd", "wcar", "trainable_params"} <= set(frame["metric"])
    means = frame[frame["metric"].isin(["mce", "relative_mce", "mce_unnormalised"])]
    assert set(means["noise"]) == {"imagenet_c", "extra_corruptions"}


def test_minimal_tree_has_one_run_and_no_transfer(tmp_path: Path) -> None:
    tree = write_minimal_tree(tmp_path)
    assert tree.runs == [(DATASET, "small_cnn", "standard")]
    assert not (tmp_path / "results" / "transfer.parquet").exists()
