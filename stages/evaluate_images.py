"""Predictions of one trained model on every image of the given image tables (fp32, eval mode).

python -m stages.evaluate_images --model-dir models/D/A/T
    --noisy data/noisy/D/perturbation/rotate.parquet [...] --batch-size 500 --threads 0
    --out results/D/A/T/perturbation.parquet

Output: one row per input row, tables in the order given: every extra column of the input tables
(``perturbation``, ``frame``, ``magnitude`` / ``variant``, ``decoder``, ``resize`` / ...), then
``index`` int64, ``label`` int16, ``prediction`` int16, ``correct`` bool. All tables must have the
same extra columns; images are converted to float in chunks, so memory stays bounded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from robustlab.data.images import ImageSet, read_images
from robustlab.evaluation import predict
from robustlab.io import write_frame
from stages.common import load_eval_model

CHUNK = 8192  # images converted to float at a time


def predict_images(
    model: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """Top-1 predictions (int64) for uint8 N x H x W x C images, in chunks of 8192."""
    out = []
    for start in tqdm(range(0, len(images), CHUNK), disable=not progress, leave=False):
        chunk = torch.from_numpy(images[start : start + CHUNK]).permute(0, 3, 1, 2)
        x = chunk.float().div_(255.0).contiguous()
        out.append(predict(model, x, device=device, batch_size=batch_size).numpy())
    return np.concatenate(out) if out else np.empty(0, np.int64)


def _check_shape(data: ImageSet, path: str, card_path: Path) -> None:
    if not card_path.exists():
        return
    card = json.loads(card_path.read_text())
    h, w, c = data.shape
    size, channels = card.get("image_size"), card.get("in_channels")
    if (size is not None and (h, w) != (size, size)) or (channels is not None and c != channels):
        raise SystemExit(
            f"stages.evaluate_images: {path}: images are {h}x{w}x{c} but the model of "
            f"{card_path.parent} expects {size}x{size}x{channels}; regenerate the table from "
            "this dataset's prepared test split"
        )


def _extra_columns(paths: list[str]) -> list[str]:
    """The extra columns shared by all tables (read from the schemas, not the images)."""
    found: list[tuple[str, list[str]]] = []
    for path in paths:
        if not Path(path).exists():
            raise SystemExit(f"stages.evaluate_images: {path}: no such image table")
        names = pq.read_schema(path).names
        if "image" not in names:
            raise SystemExit(
                f"stages.evaluate_images: {path}: no 'image' column; not an image table"
            )
        found.append((path, [n for n in names if n not in ("index", "label", "image")]))
    first_path, columns = found[0]
    for path, extra in found[1:]:
        if extra != columns:
            raise SystemExit(
                f"stages.evaluate_images: {path} has extra columns {extra} but {first_path} has "
                f"{columns}; evaluate tables of one kind per call"
            )
    return columns


def evaluate_tables(
    model: torch.nn.Module,
    device: torch.device,
    paths: list[str],
    batch_size: int,
    card_path: Path,
    progress: bool = False,
) -> pd.DataFrame:
    """Predictions on every row of the image tables ``paths`` (one kind of table), in the column
    layout of the module docstring."""
    columns = _extra_columns(paths)
    frames = []
    for path in paths:
        data = read_images(path)
        _check_shape(data, path, card_path)
        prediction = predict_images(model, data.images, device, batch_size, progress=progress)
        frame = pd.DataFrame({name: data.extra[name] for name in columns})
        frame["index"] = data.index.astype(np.int64)
        frame["label"] = data.labels.astype(np.int16)
        frame["prediction"] = prediction.astype(np.int16)
        frame["correct"] = prediction == data.labels
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stages.evaluate_images", description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--noisy", required=True, nargs="+", help="image tables to predict")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise SystemExit(
            f"stages.evaluate_images: --batch-size must be >= 1, got {args.batch_size}"
        )

    _extra_columns(args.noisy)  # fail on a bad table before loading the model
    model, device = load_eval_model(args.model_dir, args.threads)
    frame = evaluate_tables(
        model,
        device,
        args.noisy,
        args.batch_size,
        args.model_dir / "card.json",
        progress=not args.no_progress,
    )
    write_frame(frame, args.out)


if __name__ == "__main__":
    main()
