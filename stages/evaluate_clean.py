"""Clean predictions of one trained model on the test table.

python -m stages.evaluate_clean --model-dir models/D/A/T --test data/prepared/D/test.parquet
    --out results/D/A/T/clean.parquet
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
    parser = argparse.ArgumentParser(prog="stages.evaluate_clean", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--test", required=True, help="prepared test table (Parquet)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    model, device = load_eval_model(args.model_dir, args.threads)
    data = read_images(args.test)
    x, y = data.tensors()
    prediction = predict(model, x, device=device, batch_size=args.batch_size).numpy()
    frame = pd.DataFrame(
        {
            "index": data.index.astype(np.int64),
            "label": data.labels.astype(np.int16),
            "prediction": prediction.astype(np.int16),
            "correct": prediction == data.labels,
        }
    )
    write_frame(frame, args.out)


if __name__ == "__main__":
    main()
