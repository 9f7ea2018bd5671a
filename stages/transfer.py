"""Evaluate one target model on the transfer examples crafted on every source model.

python -m stages.transfer --model-dir models/D/A/T
    --examples results/D/A1/T1/transfer_examples.safetensors [...]
    --out results/D/A/T/transfer.parquet

Columns: source_arch, source_technique, attack, level, eps, index, label,
source_clean_prediction, prediction (the target's on the source's example), correct. The
target's own clean predictions are in its clean.parquet; the aggregate stage joins the two to
compute RobustART's transfer ASR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import safe_open

from robustlab.evaluation import predict
from robustlab.io import write_frame
from stages.common import load_eval_model


def read_examples(path: Path) -> tuple[dict[str, str], dict]:
    """Metadata and tensors of a transfer-examples file; the error names the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; it is written by stages.craft_transfer")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({err}); rerun its job") from err
    for key in ("crafts", "arch", "technique"):
        if key not in metadata:
            raise ValueError(f"{path}: metadata lacks {key!r}; rerun stages.craft_transfer")
    return metadata, tensors


def empty_transfer_frame() -> pd.DataFrame:
    """The transfer outcome table without rows (every column with its dtype)."""
    return pd.DataFrame(
        {
            "source_arch": pd.Series([], dtype="str"),
            "source_technique": pd.Series([], dtype="str"),
            "attack": pd.Series([], dtype="str"),
            "level": np.zeros(0, dtype=np.int16),
            "eps": np.zeros(0, dtype=np.float64),
            "index": np.zeros(0, dtype=np.int64),
            "label": np.zeros(0, dtype=np.int16),
            "source_clean_prediction": np.zeros(0, dtype=np.int16),
            "prediction": np.zeros(0, dtype=np.int16),
            "correct": np.zeros(0, dtype=bool),
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.transfer", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--examples", required=True, nargs="+", type=Path)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    model, device = load_eval_model(args.model_dir, args.threads)
    frames = []
    for path in args.examples:
        metadata, tensors = read_examples(path)
        crafts = json.loads(metadata["crafts"])
        labels = tensors["label"].numpy()
        for key, eps in sorted(crafts.items()):
            name, level = key.split("/")
            x_adv = tensors[f"examples/{key}"]
            prediction = predict(model, x_adv, device=device, batch_size=args.batch_size).numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "source_arch": metadata["arch"],
                        "source_technique": metadata["technique"],
                        "attack": name,
                        "level": np.full(len(labels), int(level), dtype=np.int16),
                        "eps": float(eps),
                        "index": tensors["index"].numpy().astype(np.int64),
                        "label": labels.astype(np.int16),
                        "source_clean_prediction": tensors["clean_prediction"]
                        .numpy()
                        .astype(np.int16),
                        "prediction": prediction.astype(np.int16),
                        "correct": prediction == labels,
                    }
                )
            )
        print(f"{args.model_dir}: evaluated transfer examples of {path}", file=sys.stderr)
    if not frames:  # no transfer attacks configured: an empty table with the same columns
        frames.append(empty_transfer_frame())
    write_frame(pd.concat(frames, ignore_index=True), args.out)


if __name__ == "__main__":
    main()
