"""Extra evaluations that only the sanity checks use, and model-level probes, for one model.

python -m stages.probe --model-dir models/D/A/T --test data/prepared/D/test.parquet
    --reference '{"steps": 10, "step_size": 0.25}' --settings '{"points": 100, ...}'
    --eps 0.02 0.05 0.1 --seed 0 --out results/D/A/T/probes.parquet
    --out-model results/D/A/T/probes.json

Per-example outcomes (columns of stages.attack) of: the reference PGD-Linf at eps 0
(``eps_zero``, every image), at a very large eps (``large_eps``, ``points`` images), with
``steps_factor`` times the steps and ``restarts`` restarts at the largest eps (``more_steps``,
``points`` images), and uniform random noise in the L-inf ball at every eps (``random_noise``,
every image). probes.json: ``num_classes``, ``zero_gradient_share``, ``deterministic``,
``max_logit_difference``, ``logits``, ``probability_like_share``. pyautoattack's own check
flags come from the AutoAttack job itself (stages.attack stores them with its outcomes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustlab.data.images import read_images
from robustlab.evaluation import evaluate_attack, predict
from robustlab.io import write_frame, write_json
from robustlab.noise.adversarial import (
    build_attack,
    forward_is_deterministic,
    input_gradient_stats,
    outputs_look_like_logits,
    random_noise_examples,
)
from robustlab.outcome_tables import outcome_frame
from stages.common import derived_seed, evaluation_points, json_object, load_eval_model

DEFAULTS = {
    "points": 100,
    "large_eps": 0.5,
    "steps_factor": 4,
    "restarts": 2,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.probe", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--test", required=True, help="prepared test table (Parquet)")
    parser.add_argument("--reference", type=json_object, required=True, help="pgd_linf parameters")
    parser.add_argument("--settings", type=json_object, default={}, help="params.yaml sanity:")
    parser.add_argument("--eps", type=float, nargs="+", required=True, help="L-inf budgets")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--out-model", required=True)
    args = parser.parse_args(argv)
    settings = {**DEFAULTS, **args.settings}
    reference = build_attack("pgd_linf", **args.reference)
    stronger = build_attack(
        "pgd_linf",
        **{
            **args.reference,
            "steps": int(args.reference.get("steps", 10)) * int(settings["steps_factor"]),
            "restarts": int(settings["restarts"]),
        },
    )

    model, device = load_eval_model(args.model_dir, args.threads)
    data = read_images(args.test)
    x_all, y_all = data.tensors()
    subset = evaluation_points(data.labels, settings["points"], args.seed)
    everything = np.arange(len(data.labels), dtype=np.int64)
    clean_all = predict(model, x_all, device=device, batch_size=args.batch_size).numpy()

    def uniform_noise(model, x, y, eps, generator):
        """Random noise in the L-inf ball, called like an attack (the model is not used)."""
        return random_noise_examples(x, eps, "linf", generator)

    def evaluate(name, attack, eps, rows):
        generator = torch.Generator().manual_seed(derived_seed(args.seed, "probe", name, eps))
        outcome = evaluate_attack(
            model,
            x_all[rows],
            y_all[rows],
            attack,
            eps,
            generator,
            device,
            args.batch_size,
            progress=not args.no_progress,
            desc=f"{name} eps={eps:g}",
        )
        print(
            f"{args.model_dir}: {name} eps={eps:g} accuracy {outcome.robust_accuracy:.1f} %",
            file=sys.stderr,
        )
        labels = data.labels[rows]
        return outcome_frame(
            name, 0, eps, data.index[rows], labels, clean_all[rows], outcome, "linf"
        )

    largest = max(args.eps)
    frames = [
        evaluate("eps_zero", reference, 0.0, everything),
        evaluate("large_eps", reference, float(settings["large_eps"]), subset),
        evaluate("more_steps", stronger, largest, subset),
    ]
    frames += [evaluate("random_noise", uniform_noise, eps, everything) for eps in args.eps]
    write_frame(pd.concat(frames, ignore_index=True), args.out)

    x_sub, y_sub = x_all[subset].to(device), y_all[subset].to(device)
    gradients = input_gradient_stats(model, x_sub, y_sub)
    determinism = forward_is_deterministic(model, x_sub)
    logits = outputs_look_like_logits(model, x_sub)
    probes = {
        "num_classes": len(data.class_names) or int(data.labels.max()) + 1,
        "zero_gradient_share": float(gradients.value),
        "deterministic": bool(determinism.passed),
        "max_logit_difference": float(determinism.value),
        "logits": bool(logits.passed),
        "probability_like_share": float(logits.value),
    }
    write_json(probes, args.out_model)


if __name__ == "__main__":
    main()
