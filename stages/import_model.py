"""Import a model robustlab did not train as a run's model folder (instead of training it).

python -m stages.import_model --test data/prepared/D/test.parquet --dataset D --arch-name NAME
    --technique T --normalization '{"mean": [...], "std": [...]}' --out-dir models/D/NAME/T
    (--weights FILE.safetensors --arch A [--arch-config '{}'] [--key-prefix module.]
     | --program FILE.pt2 --family cnn) [--family F] [--threads N]

Checks the file by content (safetensors header; torch.export archive without pickles), the
keys and shapes of the weights against the architecture, and that the model maps the dataset's
images (shape and channels from the prepared test table) to one logit per class; any problem
stops the job with a message saying what was expected. Writes model.safetensors (weights: the
architecture with the external normalisation, loadable by robustlab.models.store.load_model)
or program.pt2 (a copy of the checked program), card.json (``"external": true``, ``format``,
the source file and its SHA-256, params, MACs, num_classes...) and an empty history.parquet
(robustlab trained no epoch).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import pandas as pd
import torch

from robustlab.io import atomic_path, write_frame, write_json
from robustlab.models import architecture_family, count_macs, count_params
from robustlab.models.external import (
    ExternalModelError,
    check_outputs,
    import_weights,
    load_program,
)
from robustlab.models.store import model_spec, save_weights
from stages.common import json_object, library_versions, read_dataset_info, set_threads

PROG = "stages.import_model"
#: the columns of a training history (robustlab.training.loop), for the empty one written here
HISTORY_COLUMNS = {"epoch": "int64", "val_accuracy": "float64", "val_pgd_accuracy": "float64"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--test", required=True, type=Path, help="prepared test table")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--arch-name", required=True, help="the run's name (external_models key)")
    parser.add_argument("--technique", required=True, help="the run's technique name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", type=Path, help="safetensors weights of --arch")
    source.add_argument("--program", type=Path, help="torch.export program (.pt2)")
    parser.add_argument("--arch", help="registered architecture of --weights")
    parser.add_argument("--arch-config", type=json_object, default={})
    parser.add_argument("--key-prefix", default=None, help="prefix removed from weight keys")
    parser.add_argument("--family", choices=("cnn", "transformer", "mlp"), default=None)
    parser.add_argument(
        "--normalization", type=json_object, required=True, help='{"mean": [..], "std": [..]}'
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.weights is not None and not args.arch:
        parser.error("--weights needs --arch (the registered architecture of the weights)")
    if args.program is not None and not args.family:
        parser.error("--program needs --family (cnn, transformer or mlp)")
    norm = args.normalization
    if set(norm) != {"mean", "std"} or len(norm["mean"]) != len(norm["std"]):
        parser.error("--normalization: expected {'mean': [...], 'std': [...]} of equal length")
    return args


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def program_macs(model: torch.nn.Module, shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass (FLOP counter / 2: the Conv2d/Linear convention of
    robustlab.models.complexity, read from the program's operators)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    return int(counter.get_total_flops() // 2)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    info = read_dataset_info(args.test)
    if info.channels is None or info.height is None or info.classes is None:
        raise SystemExit(f"{PROG}: {args.test}: lacks image shape or class names; rerun prepare")
    if info.height != info.width:
        raise SystemExit(f"{PROG}: {args.test}: images are {info.height}x{info.width}, not square")
    channels, size, classes = info.channels, info.height, info.classes
    mean, std = list(args.normalization["mean"]), list(args.normalization["std"])
    if len(mean) != channels:
        raise SystemExit(
            f"{PROG}: normalization has {len(mean)} channel(s) but {args.dataset} images have "
            f"{channels}; give one mean and std per channel"
        )
    source = args.weights or args.program
    if not source.is_file():
        raise SystemExit(f"{PROG}: {source}: missing (the file external_models names)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    shape = (channels, size, size)
    try:
        if args.weights is not None:
            model = import_weights(
                args.weights, args.arch, classes, channels, size, mean, std,
                options=args.arch_config, key_prefix=args.key_prefix, dataset=args.dataset,
            )  # fmt: skip
            check_outputs(model, classes, channels, size, args.dataset)
            family = args.family or architecture_family(args.arch)
            arch, macs, fmt = args.arch, count_macs(model, shape), "safetensors"
        else:
            family = args.family
            model = load_program(args.program, mean, std, family)
            check_outputs(model, classes, channels, size, args.dataset)
            arch, macs, fmt = args.arch_name, program_macs(model, shape), "program"
    except ExternalModelError as err:
        raise SystemExit(f"{PROG}: {args.dataset}/{args.arch_name}: {err}") from None

    spec = model_spec(arch, classes, channels, size, mean, std, dict(args.arch_config))
    card = {
        "dataset": args.dataset,
        "arch_name": args.arch_name,
        "technique": args.technique,
        "technique_config": {},
        "family": family,
        "params": count_params(model),
        "trainable_params": count_params(model, trainable_only=True),
        "macs": macs,
        "external": True,
        "format": fmt,
        "source": {"path": str(source), "sha256": sha256(source)},
        "source_checksum": info.source_checksum,
        "versions": library_versions(),
        **spec,
    }
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in HISTORY_COLUMNS.items()})
    write_frame(empty, args.out_dir / "history.parquet")
    write_json(card, args.out_dir / "card.json")
    if fmt == "program":
        with atomic_path(args.out_dir / "program.pt2") as tmp:
            shutil.copyfile(args.program, tmp)
    else:
        save_weights(model, args.out_dir / "model.safetensors")
    print(
        f"imported {args.dataset}/{args.arch_name}/{args.technique} from {source} ({fmt}, "
        f"{card['params']} parameters)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
