"""Train one (dataset, arch, technique) run; write weights, history and card.

python -m stages.train --train data/prepared/D/train.parquet --dataset D --arch A
    --arch-config '{}' --technique T --technique-config '{}' --train-config '{}' --val-size 500
    --seed 0 --out-dir models/D/A/T [--snapshot-epoch N] [--threads T] [--no-progress]

Writes model.safetensors (the EMA weights when EMA is on), history.parquet, card.json and, with
--snapshot-epoch N, pretrain_snapshot.safetensors (the weights after epoch N, which CLAT starts
from; the card's ``snapshot_epochs`` records N). A per-epoch checkpoint.safetensors lets a
killed job resume; it is deleted at the end.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from robustlab.data.images import read_images
from robustlab.io import write_frame, write_json
from robustlab.models import architecture_family, count_macs, count_params
from robustlab.models.store import build_from_spec, model_spec, save_weights
from robustlab.seeding import default_device, seed_everything
from robustlab.training.loop import TrainConfig, fit
from robustlab.training.precision import resolve_amp
from robustlab.training.techniques import build_technique
from stages.common import (
    json_object,
    library_versions,
    set_threads,
    snapshot_path,
    split_train_val,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stages.train", description=__doc__)
    parser.add_argument("--train", required=True, help="prepared training table (Parquet)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--arch-config", type=json_object, default={})
    parser.add_argument(
        "--arch-name", help="the run's name for a configured variant of --arch (default: --arch)"
    )
    parser.add_argument("--technique", required=True)
    parser.add_argument(
        "--variant", help="the run's technique key when it is a named variant (card: variant)"
    )
    parser.add_argument("--technique-config", type=json_object, default={})
    parser.add_argument("--train-config", type=json_object, default={})
    parser.add_argument("--val-size", type=int, default=500, help="held-out validation images")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument(
        "--snapshot-epoch",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="also write the weights after epoch N to OUT_DIR/epoch_N.safetensors (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    seed_everything(args.seed)
    try:
        config = TrainConfig(**args.train_config)
    except TypeError as err:
        raise SystemExit(f"stages.train: bad --train-config key: {err}") from None
    technique = build_technique(args.technique, **args.technique_config)
    if len(set(args.snapshot_epoch)) > 1:
        raise SystemExit(
            f"stages.train: one --snapshot-epoch at most, got {sorted(set(args.snapshot_epoch))}"
        )
    bad = [n for n in args.snapshot_epoch if not 1 <= n <= config.epochs]
    if bad:
        raise SystemExit(f"stages.train: --snapshot-epoch {bad} outside 1..{config.epochs}")

    data = read_images(args.train)
    train_set, val_set = split_train_val(data, args.val_size, args.seed)

    h, _, c = data.shape
    spec = model_spec(
        args.arch,
        num_classes=len(data.class_names),
        in_channels=c,
        image_size=h,
        mean=train_set[0].mean(dim=(0, 2, 3)).tolist(),
        std=train_set[0].std(dim=(0, 2, 3)).tolist(),
        arch_config=args.arch_config,
    )
    model = build_from_spec(spec)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    # The snapshot waits beside the checkpoint under a name that is no output of the job:
    # Snakemake deletes a killed job's outputs before its rerun, and a rerun that resumes from
    # a checkpoint after the snapshot epoch would not write the snapshot again.
    pending = args.out_dir / "checkpoint_snapshot.safetensors"

    def snapshot(epoch: int, weights: torch.nn.Module) -> None:
        if epoch in args.snapshot_epoch:
            save_weights(weights, pending)

    history = fit(
        model,
        train_set,
        val_set,
        technique,
        config,
        seed=args.seed,
        checkpoint=args.out_dir / "checkpoint.safetensors",
        device=default_device(),
        progress=not args.no_progress,
        on_epoch_end=snapshot,
    )
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    write_frame(pd.DataFrame(history), args.out_dir / "history.parquet")
    card = {
        "dataset": args.dataset,
        "arch_name": args.arch_name or args.arch,
        "technique": args.technique,
        "technique_config": technique.config(),
        "family": architecture_family(args.arch),
        "params": count_params(model),
        "trainable_params": count_params(model, trainable_only=True),
        "macs": count_macs(model, (c, h, h)),
        "seed": args.seed,
        "train_size": len(train_set[0]),
        "val_size": len(val_set[0]),
        "train_config": asdict(config),
        "amp_used": resolve_amp(config.amp, default_device()),
        "snapshot_epochs": sorted(set(args.snapshot_epoch)),
        "source_checksum": data.source_checksum,
        "versions": library_versions(),
        **spec,
    }
    if args.variant:  # only for named variants: a registered technique's card is unchanged
        card.update(variant=args.variant)
    write_json(card, args.out_dir / "card.json")
    save_weights(model, args.out_dir / "model.safetensors")
    if args.snapshot_epoch:
        if not pending.exists():
            raise SystemExit(
                f"stages.train: {pending} is missing: the snapshot of epoch "
                f"{args.snapshot_epoch[0]} was lost; delete {args.out_dir} and train again"
            )
        pending.replace(snapshot_path(args.out_dir))
    (args.out_dir / "checkpoint.safetensors").unlink(missing_ok=True)
    last = history[-1]
    print(
        f"trained {args.dataset}/{args.arch}/{args.technique}: "
        f"val acc {last['val_accuracy']:.1f} %, val PGD acc {last['val_pgd_accuracy']:.1f} %",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
