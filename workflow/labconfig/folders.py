"""Datasets the user brings as a folder (``kind: image_folder``): defaults, checks, job options.

A folder's split sizes are unknown until it is read, so only the checks that need no folder are
made here; a dry run needs no folder at all. The prepare jobs get a fingerprint of the folder's
listing (paths, sizes, modification times) as a parameter, so Snakemake reruns them when an
image is added, removed or rewritten; the prepared table records a checksum of the bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .names import CORRUPTION_SIDES, DATASETS, PERTURBATION_SIDES

#: RobustART's ImageNet budgets: L-inf 0.5/255, 2/255, 8/255; L2 0.5, 2, 8;
#: L1 100, 400, 1600 (pixel scale [0, 1])
IMAGENET_EPS: dict[str, list[float]] = {
    "eps": [0.5 / 255, 2 / 255, 8 / 255],
    "eps_l2": [0.5, 2.0, 8.0],
    "eps_l1": [100.0, 400.0, 1600.0],
}
#: keys only a folder dataset takes
FOLDER_KEYS = ("image_size", "resize", "channels")
#: pipeline split -> sub-folder (robustlab.data.image_folder.FOLDER_SPLITS)
FOLDER_SPLITS = {"train": "train", "test": "val"}
DEFAULT_ROOT = "data/raw"


def is_folder_dataset(entry: Mapping[str, Any]) -> bool:
    """Whether a datasets: entry is a folder of the user's images (it names a kind)."""
    return entry.get("kind") is not None


def fill_folder_defaults(name: str, entry: dict[str, Any]) -> None:
    """Fill a folder entry in place: ImageNet eps levels, resize = image_size, 3 channels,
    source_dir data/raw/<name>."""
    for key, values in IMAGENET_EPS.items():
        entry.setdefault(key, list(values))
    if entry.get("resize") is None:
        entry["resize"] = entry["image_size"]
    entry.setdefault("channels", 3)
    if not entry.get("source_dir"):
        entry["source_dir"] = f"{DEFAULT_ROOT}/{name}"


def _fits(side: int, ranges: tuple[tuple[int, int | None], ...]) -> bool:
    return any(lo <= side and (hi is None or side <= hi) for lo, hi in ranges)


def _describe(ranges: tuple[tuple[int, int | None], ...]) -> str:
    return ", ".join(f"{lo}-{hi}" if hi is not None else f">= {lo}" for lo, hi in ranges)


def dataset_entry_problems(name: str, entry: Mapping[str, Any]) -> list[str]:
    """A datasets: key is a registered dataset or names a kind; folder keys only with a kind."""
    if is_folder_dataset(entry):
        return []
    problems = [
        f"datasets.{name}.{key}: only a dataset with `kind: image_folder` takes {key}"
        for key in FOLDER_KEYS
        if key in entry
    ]
    if name not in DATASETS:
        problems.append(
            f"datasets.{name}: not a registered dataset ({', '.join(DATASETS)}); for a folder "
            f"of your own images add `kind: image_folder` and image_size (docs/image_folders.md)"
        )
    return problems


def folder_problems(config: Mapping[str, Any], name: str, entry: Mapping[str, Any]) -> list[str]:
    """Checks of a (filled) folder entry of the grid that need no folder."""
    key = f"datasets.{name}"
    problems = []
    if entry.get("download"):
        problems.append(f"{key}.download: a folder of your own images cannot be downloaded")
    if entry["resize"] < entry["image_size"]:
        problems.append(
            f"{key}.resize: {entry['resize']} is below image_size ({entry['image_size']}); the "
            f"shorter side is resized to `resize`, then the centre image_size crop is kept"
        )
    train_size = entry["train_size"]
    if train_size is not None and entry["val_size"] >= train_size:
        problems.append(
            f"{key}.val_size: {entry['val_size']} must be smaller than train_size ({train_size}): "
            f"the validation images are held out of the training subset"
        )
    side = entry["image_size"]
    uses = [
        ("corruptions", CORRUPTION_SIDES, "robustlab/noise/natural/tables.py"),
        ("perturbations", PERTURBATION_SIDES, "robustlab/noise/stability/tables.py"),
    ]
    for section, ranges, tables in uses:
        if config[section]["names"] and not _fits(side, ranges):
            problems.append(
                f"{key}.image_size: {side} px has no {section} parameter table (sides "
                f"{_describe(ranges)} px; {tables}); choose such a size (224 for ImageNet-C) "
                f"or set {section}.names to []"
            )
    return problems


def folder_fingerprint(source_dir: str | os.PathLike[str], split: str) -> str:
    """16 hex digits of a split's listing: every file under its sub-folder (relative path, size,
    modification time) and the class folders of train/, which number the classes.
    A missing folder gives "absent" (the prepare job then fails naming it)."""
    root = Path(source_dir)
    folder = root / FOLDER_SPLITS[split]
    if not folder.is_dir():
        return "absent"
    digest = hashlib.sha256()
    train = root / FOLDER_SPLITS["train"]
    if train.is_dir():
        classes = sorted(p.name for p in train.iterdir() if p.is_dir())
        digest.update(("\0".join(classes) + "\n").encode())
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            stat = path.stat()
            rel = path.relative_to(folder).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def folder_prepare_options(entry: Mapping[str, Any]) -> list[str]:
    """stages.prepare's --kind, --image-size, --resize and --channels of a folder entry."""
    return [
        "--kind", entry["kind"],
        "--image-size", str(entry["image_size"]),
        "--resize", str(entry["resize"]),
        "--channels", str(entry["channels"]),
    ]  # fmt: skip
