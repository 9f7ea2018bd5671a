"""White-box attacks on one trained model at every eps; per-example outcomes.

python -m stages.attack --model-dir models/D/A/T --test data/prepared/D/test.parquet
    --attacks '{"fgsm": {}, "pgd_linf": {"steps": 10}}' --eps 0.02 0.05 0.1 --seed 0
    --out results/D/A/T/adversarial.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustlab.data.images import read_images
from robustlab.evaluation import attack_examples, predict
from robustlab.io import write_frame
from robustlab.noise.adversarial import build_attack
from stages.common import derived_seed, json_object, load_eval_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.attack", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--test", required=True, help="prepared test table (Parquet)")
    parser.add_argument(
        "--attacks",
        required=True,
        type=json_object,
        help="JSON object: attack name -> its parameters",
    )
    parser.add_argument(
        "--eps", required=True, type=float, nargs="+", help="L-inf budgets in pixel scale [0, 1]"
    )
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    for eps in args.eps:
        if not 0 <= eps <= 1:
            parser.error(f"--eps {eps}: budgets are in pixel scale and must lie in [0, 1]")
    attacks = {name: build_attack(name, **params) for name, params in args.attacks.items()}

    model, device = load_eval_model(args.model_dir, args.threads)
    data = read_images(args.test)
    x, y = data.tensors()
    clean = predict(model, x, device=device, batch_size=args.batch_size).numpy()

    frames = []
    for name, attack in attacks.items():
        for eps in args.eps:
            generator = torch.Generator().manual_seed(derived_seed(args.seed, name, eps))
            x_adv = attack_examples(
                model,
                x,
                y,
                attack,
                eps,
                generator,
                device,
                args.batch_size,
                progress=not args.no_progress,
                desc=f"{name} eps={eps:g}",
            )
            prediction = predict(model, x_adv, device=device, batch_size=args.batch_size).numpy()
            linf = (x_adv - x).abs().flatten(1).amax(1).numpy() if len(x) else np.zeros(0)
            frames.append(
                pd.DataFrame(
                    {
                        "attack": name,
                        "eps": float(eps),
                        "index": data.index.astype(np.int64),
                        "label": data.labels.astype(np.int16),
                        "clean_prediction": clean.astype(np.int16),
                        "prediction": prediction.astype(np.int16),
                        "correct": prediction == data.labels,
                        "linf": linf.astype(np.float32),
                    }
                )
            )
            accuracy = 100.0 * float(np.mean(prediction == data.labels))
            print(
                f"{args.model_dir}: {name} eps={eps:g} accuracy {accuracy:.1f} %", file=sys.stderr
            )
    write_frame(pd.concat(frames, ignore_index=True), args.out)


if __name__ == "__main__":
    main()
