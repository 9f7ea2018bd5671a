"""CLAT fine-tuning of a pretrained run; writes weights, history, card, criticality.

python -m stages.clat --train data/prepared/D/train.parquet --dataset D --arch A
    --init-dir models/D/A/X --init-epoch N --pretrain-technique X --clat-config '{...}'
    --train-config '{...}' --val-size V --seed S --threads T --out-dir models/D/A/X+clat
    --criticality-out results/D/A/X+clat/criticality.parquet [--no-progress]

Starts from X's weights after epoch N: INIT_DIR/pretrain_snapshot.safetensors (written by
stages.train --snapshot-epoch N; its card must record N), or INIT_DIR/model.safetensors when N
is X's last epoch. history.parquet
holds X's rows for epochs 1..N followed by the CLAT epochs N+1, N+2, ... (with lam, train_ce,
train_feature_loss, train_weighted_feature_loss); the criticality table has one row per
candidate layer and measurement; the card records the lambda used (``lam``; calibrated with
``lam: auto``, see ``lam_calibration``). Resumable through OUT_DIR/checkpoint.safetensors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch
from safetensors.torch import load_file

from robustlab.data.images import read_images
from robustlab.io import read_frame, write_frame, write_json, write_table
from robustlab.models import architecture_family, count_macs, count_params
from robustlab.models.store import build_from_spec, save_weights
from robustlab.seeding import default_device, seed_everything
from robustlab.training.clat import ClatConfig, ClatResult, fit_clat
from robustlab.training.config import TrainConfig
from robustlab.training.precision import resolve_amp
from stages.common import (
    json_object,
    library_versions,
    read_card,
    set_threads,
    snapshot_path,
    split_train_val,
)

CRITICALITY_SCHEMA = pa.schema(
    [
        ("epoch", pa.int64()),
        ("layer_index", pa.int64()),
        ("layer_name", pa.string()),
        ("weakness", pa.float64()),
        ("criticality", pa.float64()),
        ("selected", pa.bool_()),
    ]
)
SPEC_KEYS = ("arch", "arch_config", "num_classes", "in_channels", "image_size", "mean", "std")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stages.clat", description=__doc__)
    parser.add_argument("--train", required=True, help="prepared training table (Parquet)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--init-dir", required=True, type=Path, help="the pretraining run")
    parser.add_argument("--init-epoch", required=True, type=int, help="start from this epoch")
    parser.add_argument("--pretrain-technique", required=True)
    parser.add_argument(
        "--variant", help="the run's technique key when it is a named variant (card: variant)"
    )
    parser.add_argument("--clat-config", type=json_object, default={})
    parser.add_argument("--train-config", type=json_object, default={})
    parser.add_argument("--val-size", type=int, default=500, help="held-out validation images")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--criticality-out", required=True, type=Path)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def _fail(message: str) -> SystemExit:
    return SystemExit(f"stages.clat: {message}")


def read_init_card(args: argparse.Namespace) -> dict[str, Any]:
    """The pretraining run's card, checked against the command line."""
    path = args.init_dir / "card.json"
    if not path.exists():
        raise _fail(f"{path}: missing; run stages.train for {args.pretrain_technique} first")
    card = read_card(path, required=())
    if card.get("arch") != args.arch or card.get("technique") != args.pretrain_technique:
        raise _fail(
            f"{path} is {card.get('arch')}/{card.get('technique')}, not "
            f"{args.arch}/{args.pretrain_technique}; check --init-dir"
        )
    if card.get("seed") != args.seed or card.get("val_size") not in (None, args.val_size):
        print(
            f"stages.clat: warning: {path} was trained with seed {card.get('seed')} and "
            f"val_size {card.get('val_size')}; the validation split here differs from its own",
            file=sys.stderr,
        )
    return card


def init_weights_path(
    init_dir: Path, epoch: int, pretrain_epochs: int, snapshot_epochs: list[int]
) -> Path:
    """pretrain_snapshot.safetensors, or model.safetensors for the pretraining run's last epoch.

    The snapshot counts only when the pretraining card records it was taken after ``epoch``
    (``snapshot_epochs``), so a snapshot of another epoch is never used."""
    if not 1 <= epoch <= pretrain_epochs:
        raise _fail(f"--init-epoch {epoch} outside the pretraining run's 1..{pretrain_epochs}")
    path = init_dir / "model.safetensors"
    if epoch < pretrain_epochs:
        path = snapshot_path(init_dir)
        if list(snapshot_epochs) != [epoch]:
            raise _fail(
                f"{path}: taken after epoch(s) {list(snapshot_epochs)}, not {epoch}; retrain the "
                f"pretraining run with --snapshot-epoch {epoch} (snakemake --forcerun train)"
            )
    if not path.exists():
        raise _fail(f"{path}: missing; train the pretraining run with --snapshot-epoch {epoch}")
    return path


def joined_history(init_dir: Path, epoch: int, result: ClatResult) -> pd.DataFrame:
    """The pretraining run's rows for epochs 1..epoch, then the CLAT rows."""
    before = read_frame(init_dir / "history.parquet")
    before = before[before["epoch"] <= epoch].sort_values("epoch", kind="mergesort")
    if len(before) != epoch:
        raise _fail(f"{init_dir / 'history.parquet'} has {len(before)} rows up to epoch {epoch}")
    after = pd.DataFrame(result.history)
    frame = pd.concat([before, after], ignore_index=True)
    for column in ("selected_layers", "selected_layer_names", "selected_criticality"):
        frame[column] = frame[column].astype("string")
    for column in ("lam", "train_ce", "train_feature_loss", "train_weighted_feature_loss"):
        frame[column] = frame[column].astype("float64")
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["trainable_params"] = frame["trainable_params"].astype("int64")
    return frame


def criticality_table(result: ClatResult) -> pa.Table:
    """One row per layer and measurement; ``epoch`` is the global epoch at whose start the
    criticality was measured (pretraining epochs + CLAT epoch)."""
    return pa.Table.from_pylist(result.criticality, schema=CRITICALITY_SCHEMA)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    seed_everything(args.seed)
    try:
        config = TrainConfig(**args.train_config)
        clat = ClatConfig(**args.clat_config)
    except TypeError as err:
        raise _fail(f"bad --train-config or --clat-config key: {err}") from None
    card = read_init_card(args)
    pretrain_epochs = int(card["train_config"]["epochs"])
    weights = init_weights_path(
        args.init_dir, args.init_epoch, pretrain_epochs, card.get("snapshot_epochs", [])
    )
    spec = {k: card[k] for k in SPEC_KEYS}
    model = build_from_spec(spec)
    model.load_state_dict(load_file(str(weights)))

    data = read_images(args.train)
    train_set, val_set = split_train_val(data, args.val_size, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out_dir / "checkpoint.safetensors"
    result = fit_clat(
        model,
        train_set,
        val_set,
        clat,
        config,
        seed=args.seed,
        checkpoint=checkpoint,
        device=default_device(),
        progress=not args.no_progress,
        epoch_offset=args.init_epoch,
    )
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    history = joined_history(args.init_dir, args.init_epoch, result)
    write_frame(history, args.out_dir / "history.parquet")
    write_table(criticality_table(result), args.criticality_out)
    h, c = spec["image_size"], spec["in_channels"]
    selected = [result.layers[i] for i in result.selection]
    settings = {**asdict(clat), "lam": result.lam, "reselect_every": clat.period}
    out_card = {
        "dataset": args.dataset,
        "arch_name": card.get("arch_name", args.arch),
        "technique": f"{args.pretrain_technique}+clat",
        "technique_config": settings,
        "clat_config": asdict(clat),
        "lam": result.lam,
        "lam_calibration": result.calibration,
        "pretrain_technique": args.pretrain_technique,
        "pretrain_technique_config": card.get("technique_config", {}),
        "pretrain_epoch": args.init_epoch,
        "pretrain_epochs": pretrain_epochs,
        "init_weights": str(weights),
        "family": architecture_family(args.arch),
        "params": count_params(model),
        "trainable_params": result.trainable_params,
        "layers": len(result.layers),
        "candidate_layers": [layer.name for layer in result.layers],
        "selected_layers": [layer.index for layer in selected],
        "selected_layer_names": [layer.name for layer in selected],
        "macs": count_macs(model, (c, h, h)),
        "seed": args.seed,
        "train_size": len(train_set[0]),
        "val_size": len(val_set[0]),
        "train_config": asdict(config),
        "amp_used": resolve_amp(config.amp, default_device()),
        "source_checksum": data.source_checksum,
        "versions": library_versions(),
        **spec,
    }
    if args.variant:  # named variants: the key and the run it started from (its folder)
        out_card.update(variant=args.variant, pretrained=args.init_dir.name)
    write_json(out_card, args.out_dir / "card.json")
    save_weights(model, args.out_dir / "model.safetensors")
    checkpoint.unlink(missing_ok=True)
    last = result.history[-1]
    print(
        f"trained {args.dataset}/{args.arch}/{out_card['technique']}: layers "
        f"{out_card['selected_layers']} of {len(result.layers)}, val acc "
        f"{last['val_accuracy']:.1f} %, val PGD acc {last['val_pgd_accuracy']:.1f} %",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
