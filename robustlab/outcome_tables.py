"""Per-example outcome tables: predictions on image tables and outcomes of an attack.

Both layouts end in ``index`` int64, ``label`` int16, ``prediction`` int16, ``correct`` bool, so
the metrics read them alike. Predictions are fp32 with the model in eval mode
(:func:`robustlab.evaluation.predict`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from robustlab.data.images import ImageSet, read_images
from robustlab.evaluation import AttackOutcome, predict

CHUNK = 8192  # images converted to float at a time

Paths = Sequence[str | os.PathLike[str]]


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


def extra_columns(paths: Paths) -> list[str]:
    """The extra columns shared by all image tables ``paths`` (read from the schemas, not the
    images); the error names a missing table, a table without images or two that differ."""
    found: list[tuple[str, list[str]]] = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such image table")
        names = pq.read_schema(path).names
        if "image" not in names:
            raise ValueError(f"{path}: no 'image' column; not an image table")
        found.append((str(path), [n for n in names if n not in ("index", "label", "image")]))
    first_path, columns = found[0]
    for path, extra in found[1:]:
        if extra != columns:
            raise ValueError(
                f"{path} has extra columns {extra} but {first_path} has "
                f"{columns}; evaluate tables of one kind per call"
            )
    return columns


def check_image_shape(
    data: ImageSet, path: str | os.PathLike[str], image_size: int | None, channels: int | None
) -> None:
    """Raise a ValueError naming ``path`` when its images are not ``image_size`` square with
    ``channels`` channels (None: not checked)."""
    h, w, c = data.shape
    if (image_size is not None and (h, w) != (image_size, image_size)) or (
        channels is not None and c != channels
    ):
        raise ValueError(
            f"{path}: images are {h}x{w}x{c} but the model expects "
            f"{image_size}x{image_size}x{channels}; regenerate the table from this dataset's "
            "prepared test split"
        )


def evaluate_tables(
    model: torch.nn.Module,
    device: torch.device,
    paths: Paths,
    batch_size: int,
    image_size: int | None = None,
    channels: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Predictions on every row of the image tables ``paths`` (one kind of table), one row per
    input row, tables in the order given: every extra column of the inputs (``perturbation``,
    ``frame``, ``magnitude`` / ``variant``, ``decoder``, ``resize`` / ...), then ``index``,
    ``label``, ``prediction``, ``correct``. Images are converted to float in chunks, so memory
    stays bounded; ``image_size`` / ``channels`` (the model's) are checked on every table."""
    columns = extra_columns(paths)
    frames = []
    for path in paths:
        data = read_images(path)
        check_image_shape(data, path, image_size, channels)
        prediction = predict_images(model, data.images, device, batch_size, progress=progress)
        frame = pd.DataFrame({name: data.extra[name] for name in columns})
        frame["index"] = data.index.astype(np.int64)
        frame["label"] = data.labels.astype(np.int16)
        frame["prediction"] = prediction.astype(np.int16)
        frame["correct"] = prediction == data.labels
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def outcome_frame(
    name: str,
    level: int,
    eps: float,
    index: np.ndarray,
    labels: np.ndarray,
    clean: np.ndarray,
    outcome: AttackOutcome,
    norm: str,
) -> pd.DataFrame:
    """Per-example outcomes of one (attack, eps): attack, norm, level, eps, index, label,
    clean_prediction, prediction (strict fp32), correct, perturbation, pixel_min, pixel_max
    (range of x_adv), forward_passes, backward_passes (the same on every row), attack_prediction
    (in the crafting settings), fooled_by (the AutoAttack stage that fooled the point, "" where
    none did)."""
    n = len(index)
    flat = outcome.x_adv.flatten(1)
    prediction = outcome.prediction.numpy()
    return pd.DataFrame(
        {
            "attack": name,
            "norm": norm,
            "level": np.full(n, level, dtype=np.int16),
            "eps": float(eps),
            "index": index.astype(np.int64),
            "label": labels.astype(np.int16),
            "clean_prediction": clean.astype(np.int16),
            "prediction": prediction.astype(np.int16),
            "correct": prediction == labels,
            "perturbation": outcome.perturbation.numpy(),
            "pixel_min": flat.amin(1).double().numpy() if n else np.zeros(0),
            "pixel_max": flat.amax(1).double().numpy() if n else np.zeros(0),
            "forward_passes": np.full(n, outcome.forward, dtype=np.int64),
            "backward_passes": np.full(n, outcome.backward, dtype=np.int64),
            "attack_prediction": outcome.attack_prediction.numpy().astype(np.int16),
            "fooled_by": list(outcome.fooled_by) if outcome.fooled_by is not None else "",
        }
    )
