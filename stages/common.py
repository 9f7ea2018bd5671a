"""Helpers shared by the stage CLIs: argument types, threads, versions, reading inputs.

torch and the model zoo are imported inside the helpers that need them, so the stages that only
move tables (prepare, perturb, system noise, sanity, aggregate) start without loading torch.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from robustlab.io import read_frame
from robustlab.metrics.table import validate_metrics_frame

if TYPE_CHECKING:
    import torch


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads (0 keeps torch's default)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def library_versions() -> dict[str, str]:
    """Versions recorded in model cards and the report."""
    import numpy
    import pandas
    import pyarrow
    import torch

    import robustlab

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "robustlab": robustlab.__version__,
    }


def derived_seed(seed: int, *parts: object) -> int:
    """A stable seed for one sub-task (e.g. an attack at one eps), independent of run order."""
    import zlib

    key = "/".join(str(p) for p in (seed, *parts))
    return zlib.crc32(key.encode())


def read_cards(paths: list[Path]) -> list[dict[str, Any]]:
    """Model cards; the error names a missing file or key."""
    cards = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; it is written by stages.train")
        card = json.loads(path.read_text())
        for key in ("arch", "family"):
            if key not in card:
                raise ValueError(f"{path}: lacks key {key!r}; rerun stages.train for this run")
        # a named variant (sweeps, architectures: entries with `arch`) appears under its name
        cards.append({**card, "arch": card.get("arch_name", card["arch"])})
    return cards


def read_metrics(path: Path) -> pd.DataFrame:
    """``results/metrics.parquet``, checked against the contract; the error names the file."""
    frame = read_frame(path)
    try:
        validate_metrics_frame(frame)
    except ValueError as err:
        raise ValueError(f"{path}: {err}; rerun stages.aggregate") from err
    return frame


def load_eval_model(model_dir: Path, threads: int) -> tuple[torch.nn.Module, torch.device]:
    """The trained model of ``model_dir`` in eval mode on the default device, and that device."""
    set_threads(threads)
    from robustlab.models.store import load_model
    from robustlab.seeding import default_device

    device = default_device()
    return load_model(model_dir / "model.safetensors").to(device), device


def evaluation_points(labels, points: int | None, seed: int):
    """Row positions of the test images an evaluation uses: all, or a class-stratified subset.

    The subset depends only on ``seed`` and ``points``, so every attack and every model with the
    same setting sees the same images (their outcomes can be compared image by image).
    """
    import numpy as np

    from robustlab.data.subset import stratified_subset

    labels = np.asarray(labels)
    if points is None or points >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    return stratified_subset(labels, points, derived_seed(seed, "evaluation-points"))


def points_arg(text: str) -> int | None:
    """argparse type: a positive number of images, or ``all``."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'all', got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value
