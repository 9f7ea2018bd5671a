"""Craft transfer examples on one source model: every (attack, level, eps) of --craft.

python -m stages.craft_transfer --model-dir models/D/A/T --test data/prepared/D/test.parquet
    --attacks '{"fgsm": {}, "pgd_linf": {"steps": 10}}' --craft fgsm:3:0.1 --craft pgd_linf:3:0.1
    [--points 400] --seed 0 --out results/D/A/T/transfer_examples.safetensors

The examples are crafted once per source and shared by every target's transfer job. The file
holds, as safetensors: ``index``, ``label``, ``clean_prediction`` (the source's) and one float32
N x C x H x W tensor ``examples/<attack>/<level>`` per craft; its metadata names the source
(dataset, arch, technique) and each craft's eps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from robustlab.data.images import read_images
from robustlab.evaluation import attack_examples, predict
from robustlab.io import write_safetensors
from robustlab.noise.adversarial import build_attack
from stages.common import (
    derived_seed,
    evaluation_points,
    json_object,
    load_eval_model,
    points_arg,
    read_card,
)


def parse_craft(text: str) -> tuple[str, int, float]:
    """``attack:level:eps`` -> (attack, level, eps), or a clear error."""
    parts = text.split(":")
    try:
        name, level, eps = parts[0], int(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(
            f"--craft {text!r}: expected attack:level:eps, e.g. fgsm:3:0.1"
        ) from None
    if len(parts) != 3 or not 0 <= eps <= 1:
        raise argparse.ArgumentTypeError(f"--craft {text!r}: expected attack:level:eps in [0, 1]")
    return name, level, eps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.craft_transfer", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--test", required=True, help="prepared test table (Parquet)")
    parser.add_argument("--attacks", required=True, type=json_object, help="name -> parameters")
    # none: transfer.attacks is empty, and the examples file holds only the clean predictions
    parser.add_argument("--craft", type=parse_craft, action="append", default=[])
    parser.add_argument("--points", type=points_arg, default=None)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    for name, _, _ in args.craft:
        if name not in args.attacks:
            parser.error(f"--craft {name}: not among --attacks ({', '.join(args.attacks)})")
    attacks = {}
    for name, params in args.attacks.items():
        try:
            attacks[name] = build_attack(name, **params)
        except (KeyError, TypeError, ValueError) as err:
            raise SystemExit(f"stages.craft_transfer: attack {name}: {err}") from None

    card = read_card(args.model_dir / "card.json", required=())
    model, device = load_eval_model(args.model_dir, args.threads)
    data = read_images(args.test)
    rows = evaluation_points(data.labels, args.points, args.seed)
    x, y = data.tensors()
    x, y = x[rows], y[rows]
    clean = predict(model, x, device=device, batch_size=args.batch_size)
    tensors = {
        "index": torch.from_numpy(data.index[rows].astype(np.int64)),
        "label": y.clone(),
        "clean_prediction": clean,
    }
    crafts = {}
    for name, level, eps in args.craft:
        generator = torch.Generator().manual_seed(derived_seed(args.seed, "transfer", name, eps))
        x_adv = attack_examples(
            model,
            x,
            y,
            attacks[name],
            eps,
            generator,
            device,
            args.batch_size,
            progress=not args.no_progress,
            desc=f"craft {name} eps={eps:g}",
        )
        tensors[f"examples/{name}/{level}"] = x_adv.float().contiguous()
        crafts[f"{name}/{level}"] = eps
        print(f"{args.model_dir}: crafted {name} eps={eps:g} on {len(x)} images", file=sys.stderr)
    metadata = {
        "dataset": str(card.get("dataset", "")),
        "arch": str(card.get("arch_name", card.get("arch", ""))),
        "technique": str(card.get("technique", "")),
        "crafts": json.dumps(crafts, sort_keys=True),
    }
    write_safetensors(tensors, args.out, metadata)


if __name__ == "__main__":
    main()
