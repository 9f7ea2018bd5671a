"""Predictions of one trained model on every corrupted test table.

python -m stages.evaluate_natural --model-dir models/D/A/T
    --noisy data/noisy/D/gaussian_noise.parquet [...] --out results/D/A/T/natural.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from robustlab.data.images import read_images
from robustlab.evaluation import predict
from robustlab.io import write_frame
from stages.common import load_eval_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.evaluate_natural", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument(
        "--noisy", required=True, nargs="+", help="corrupted test tables written by stages.corrupt"
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    model, device = load_eval_model(args.model_dir, args.threads)
    frames = []
    for path in args.noisy:
        data = read_images(path)
        for column in ("corruption", "severity"):
            if column not in data.extra:
                raise SystemExit(f"{path}: no {column!r} column; not written by stages.corrupt")
        x, _ = data.tensors()
        prediction = predict(model, x, device=device, batch_size=args.batch_size).numpy()
        frames.append(
            pd.DataFrame(
                {
                    "corruption": data.extra["corruption"].astype(str),
                    "severity": data.extra["severity"].astype(np.int16),
                    "index": data.index.astype(np.int64),
                    "label": data.labels.astype(np.int16),
                    "prediction": prediction.astype(np.int16),
                    "correct": prediction == data.labels,
                }
            )
        )
    write_frame(pd.concat(frames, ignore_index=True), args.out)


if __name__ == "__main__":
    main()
