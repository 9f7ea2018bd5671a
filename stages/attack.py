"""One attack on one trained model at each of its budgets; per-example outcomes.

python -m stages.attack --model-dir models/D/A/T --test data/prepared/D/test.parquet
    --attack pgd_linf --attack-config '{"steps": 10, "step_size": 0.25}'
    --level 1 --eps 0.02 --level 2 --eps 0.05 --level 3 --eps 0.1 [--points 100]
    --seed 0 --out results/D/A/T/adversarial/pgd_linf.parquet

Columns: attack, norm, level, eps, index, label, clean_prediction, prediction, correct,
perturbation (size of x_adv - x in the attack's norm), pixel_min, pixel_max (range of x_adv),
forward_passes, backward_passes (model passes in examples spent on this (attack, eps), the same
on every row of the group), attack_prediction (the prediction on x_adv in the crafting settings,
what the attack counted; ``prediction`` is the strict fp32 judgement), fooled_by (AutoAttack:
the stage whose example fooled the model, e.g. ``square``; "" where none did and for attacks
without stages). Attacks that run their own checks (AutoAttack, Square through
pyautoattack) store the flags raised as JSON under the table's ``attack_flags`` metadata key,
and their stages in the order they ran (a JSON list) under ``attack_stages``.

The eps levels are positions in the dataset's list of budgets for the attack's norm, so attacks
of different norms line up by level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from robustlab.data.images import read_images
from robustlab.evaluation import evaluate_attack, predict
from robustlab.io import write_frame
from robustlab.noise.adversarial import build_attack
from robustlab.outcome_tables import outcome_frame
from stages.common import derived_seed, evaluation_points, json_object, load_eval_model, points_arg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.attack", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--test", required=True, help="prepared test table (Parquet)")
    parser.add_argument("--attack", required=True, help="attack registry name")
    parser.add_argument("--attack-config", type=json_object, default={}, help="JSON parameters")
    parser.add_argument("--level", type=int, action="append", required=True)
    parser.add_argument(
        "--eps", type=float, action="append", required=True, help="budget of each --level"
    )
    parser.add_argument("--points", type=points_arg, default=None, help="images attacked, or all")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if len(args.level) != len(args.eps):
        parser.error("give one --eps per --level")
    for eps in args.eps:
        if eps < 0:
            parser.error(f"--eps {eps}: budgets must be non-negative")
    try:
        attack = build_attack(args.attack, **args.attack_config)
    except (KeyError, TypeError, ValueError) as err:
        raise SystemExit(f"stages.attack: --attack {args.attack}: {err}") from None
    if attack.norm == "linf" and any(eps > 1 for eps in args.eps):
        parser.error("--eps: L-inf budgets are in pixel scale and must lie in [0, 1]")

    model, device = load_eval_model(args.model_dir, args.threads)
    data = read_images(args.test)
    rows = evaluation_points(data.labels, args.points, args.seed)
    x, y = data.tensors()
    x, y = x[rows], y[rows]
    index, labels = data.index[rows], data.labels[rows]
    clean = predict(model, x, device=device, batch_size=args.batch_size).numpy()

    frames = []
    for level, eps in zip(args.level, args.eps, strict=True):
        generator = torch.Generator().manual_seed(derived_seed(args.seed, args.attack, eps))
        outcome = evaluate_attack(
            model,
            x,
            y,
            attack,
            eps,
            generator,
            device,
            args.batch_size,
            progress=not args.no_progress,
            desc=f"{args.attack} eps={eps:g}",
        )
        frames.append(
            outcome_frame(args.attack, level, eps, index, labels, clean, outcome, attack.norm)
        )
        print(
            f"{args.model_dir}: {args.attack} eps={eps:g} accuracy "
            f"{outcome.robust_accuracy:.1f} % "
            f"({outcome.forward} forward, {outcome.backward} backward passes)",
            file=sys.stderr,
        )
    # pyautoattack's own checks (randomness, softmax outputs, zero gradients, ...) fire inside
    # the attack; they travel with the outcomes as table metadata for the sanity stage
    flags = getattr(attack, "flags", None)
    metadata = {"attack_flags": json.dumps(flags, sort_keys=True)} if flags is not None else {}
    # the stages of attacks made of stages (AutoAttack), in order: the sanity stage compares
    # the white-box stages with Square through the fooled_by column
    if getattr(attack, "stage_names", None):
        metadata["attack_stages"] = json.dumps(list(attack.stage_names))
    write_frame(pd.concat(frames, ignore_index=True), args.out, metadata=metadata or None)


if __name__ == "__main__":
    main()
