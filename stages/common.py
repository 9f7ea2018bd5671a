"""Helpers shared by the stage CLIs: argument types, threads, versions, reading inputs (runs,
model cards, outcome tables, the report's tables), image subsets, the training split.

torch and the model zoo are imported inside the helpers that need them, so the stages that only
move tables (prepare, perturb, system noise, sanity, aggregate) start without loading torch.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from robustlab.data.images import ImageSet
from robustlab.data.subset import stratified_subset
from robustlab.io import read_frame
from robustlab.metrics.comparisons import COLUMNS as COMPARISON_COLUMNS
from robustlab.metrics.table import RunOutcomes, validate_metrics_frame
from robustlab.report.data import DatasetInfo, ReportData, dataset_info
from robustlab.variants import variant_from_card

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


def parse_run(text: str) -> tuple[str, str, str]:
    """argparse type: ``dataset/arch/technique`` -> its three parts, or a clear error."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected dataset/arch/technique")
    return parts[0], parts[1], parts[2]


def read_card(path: Path, required: Sequence[str] = ("arch", "family")) -> dict[str, Any]:
    """A model card (``card.json``) as written; the error names a missing file or key."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; it is written by stages.train")
    card = json.loads(path.read_text())
    for key in required:
        if key not in card:
            raise ValueError(f"{path}: lacks key {key!r}; rerun stages.train for this run")
    return card


WRITERS = {
    "clean.parquet": "stages.evaluate (rule evaluate)",
    "adversarial": "stages.attack",
    "transfer.parquet": "stages.transfer",
    "stability.parquet": "stages.evaluate (rule evaluate)",
    "system.parquet": "stages.evaluate (rule evaluate)",
    "natural.parquet": "stages.evaluate (rule evaluate)",
    "card.json": "stages.train (stages.import_model for an external model)",
    "history.parquet": "stages.train (stages.import_model for an external model)",
    "metrics.parquet": "stages.aggregate",
    "criticality.parquet": "stages.clat",
}


def require_input(path: Path) -> Path:
    """``path`` when it exists; else the error names the stage that writes it."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; it is written by "
            f"{WRITERS.get(path.name, WRITERS.get(path.parent.name, 'the pipeline'))}"
            " (run that rule first)"
        )
    return path


def read_outcomes(
    results_dir: Path,
    run: tuple[str, str, str],
    attacks: list[str],
    stability: bool = False,
    system: bool = False,
) -> RunOutcomes:
    """The per-example outcome tables of one run (every attack's outcomes concatenated);
    ``stability`` / ``system``: also read the perturbation and system-noise outcomes."""
    folder = results_dir.joinpath(*run)
    adversarial = [
        read_frame(require_input(folder / "adversarial" / f"{name}.parquet")) for name in attacks
    ]
    return RunOutcomes(
        clean=read_frame(require_input(folder / "clean.parquet")),
        adversarial=pd.concat(adversarial, ignore_index=True) if adversarial else pd.DataFrame(),
        natural=read_frame(require_input(folder / "natural.parquet")),
        stability=read_frame(require_input(folder / "stability.parquet")) if stability else None,
        system=read_frame(require_input(folder / "system.parquet")) if system else None,
    )


def read_metrics(path: Path) -> pd.DataFrame:
    """``results/metrics.parquet``, checked against the contract; the error names the file."""
    frame = read_frame(path)
    try:
        validate_metrics_frame(frame)
    except ValueError as err:
        raise ValueError(f"{path}: {err}; rerun stages.aggregate") from err
    return frame


def load_eval_model(model_dir: Path, threads: int) -> tuple[torch.nn.Module, torch.device]:
    """The trained (or imported) model of ``model_dir`` in eval mode on the default device, and
    that device. An imported torch.export program (card ``format: program``) is loaded from
    ``program.pt2`` (robustlab.models.external.load_program). Weights are channels_last: the
    same values, 1.05-1.5x faster attack steps on CPU (bench/hardware_efficiency.py)."""
    set_threads(threads)
    import torch

    from robustlab.models.store import load_model
    from robustlab.seeding import default_device

    device = default_device()
    card_path = model_dir / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    if card.get("format") == "program":
        from robustlab.models.external import load_program

        program = model_dir / "program.pt2"
        model = load_program(program, card["mean"], card["std"], card["family"], device)
        return model.eval(), device
    model = load_model(model_dir / "model.safetensors")
    return model.to(device, memory_format=torch.channels_last), device


def evaluation_points(labels, points: int | None, seed: int):
    """Row positions of the test images an evaluation uses: all, or a class-stratified subset.

    The subset depends only on ``seed`` and ``points``, so every attack and every model with the
    same setting sees the same images (their outcomes can be compared image by image).
    """
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


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming the tables both the figures and the report stage read."""
    parser.add_argument("--metrics", type=Path, required=True, help="results/metrics.parquet")
    parser.add_argument("--transfer", type=Path, default=None, help="results/transfer.parquet")
    parser.add_argument("--sanity", type=Path, default=None, help="results/sanity.parquet")
    parser.add_argument(
        "--comparisons", type=Path, default=None, help="results/comparisons.parquet"
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument(
        "--run",
        type=parse_run,
        action="append",
        default=None,
        metavar="D/A/T",
        help="a run (repeat); default: every run of the metrics table",
    )
    parser.add_argument(
        "--attack-norm",
        action="append",
        default=[],
        metavar="NAME=NORM",
        help="an attack's norm (linf, l2, l1), for axis labels",
    )


def run_card(path: Path) -> dict[str, Any]:
    """A run's model card for the report: ``arch`` becomes the run's (variant) name,
    ``arch_base`` the registered architecture."""
    card = read_card(path)
    return {**card, "arch_base": card["arch"], "arch": card.get("arch_name", card["arch"])}


def _attack_norms(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, norm = item.partition("=")
        if not sep or norm.lower() not in ("linf", "l2", "l1"):
            raise SystemExit(f"--attack-norm {item!r}: expected NAME=linf, NAME=l2 or NAME=l1")
        out[name] = norm.lower()
    return out


def read_inputs(args: argparse.Namespace, test_tables: list[Path] | None = None) -> ReportData:
    """Every table and card the figures and the report are drawn from."""
    data = ReportData(
        metrics=read_metrics(args.metrics), attack_norms=_attack_norms(args.attack_norm)
    )
    runs = list(args.run) if args.run else data.runs
    for run in runs:
        model_dir = args.models_dir.joinpath(*run)
        data.cards[run] = run_card(model_dir / "card.json")
        if (model_dir / "history.parquet").exists():
            data.histories[run] = read_frame(model_dir / "history.parquet")
        variant = variant_from_card(run[2], data.cards[run])
        if variant.is_clat:
            data.criticality[run] = read_frame(
                args.results_dir.joinpath(*run) / "criticality.parquet"
            )
            if run not in data.histories:
                raise FileNotFoundError(
                    f"{model_dir / 'history.parquet'}: missing; it is written by stages.clat"
                )
            base = (run[0], run[1], str(variant.pretrained))
            base_history = args.models_dir.joinpath(*base) / "history.parquet"
            if base not in data.histories and base_history.exists():
                data.histories[base] = read_frame(base_history)
    if args.transfer is not None:
        data.transfer = read_frame(args.transfer)
    if args.sanity is not None:
        data.sanity = read_frame(args.sanity)
    if args.comparisons is not None:
        data.comparisons = read_frame(args.comparisons)
        missing = [c for c in COMPARISON_COLUMNS if c not in data.comparisons.columns]
        if missing:
            raise ValueError(
                f"{args.comparisons}: lacks column(s) {', '.join(missing)}; rerun stages.compare"
            )
    for path in test_tables or []:
        data.datasets[path.parent.name] = read_dataset_info(path)
    return data


def read_dataset_info(path: Path) -> DatasetInfo:
    """Row count and schema metadata of a prepared test table (images are not read)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; it is written by stages.prepare")
    parquet = pq.ParquetFile(path)
    return dataset_info(parquet.schema_arrow.metadata or {}, parquet.metadata.num_rows)


SUBSETS = ("first", "stratified")


def add_subset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-images`` and ``--subset``, shared by the noise-generating stages."""
    parser.add_argument(
        "--max-images", type=int, default=None, help="keep at most this many test images"
    )
    parser.add_argument(
        "--subset",
        choices=SUBSETS,
        default="first",
        help="first: the N smallest indices; stratified: class-balanced, drawn with --seed",
    )


def select_images(
    data: ImageSet, max_images: int | None, subset: str, seed: int, prog: str
) -> ImageSet:
    """The images of ``data`` sorted by index, cut to ``max_images`` as ``subset`` says."""
    order = np.argsort(data.index, kind="stable")
    if max_images is not None:
        if max_images < 1:
            raise SystemExit(f"{prog}: --max-images must be >= 1, got {max_images}")
        if subset == "first":
            order = order[:max_images]
        else:
            try:
                order = order[stratified_subset(data.labels[order], max_images, seed)]
            except ValueError as err:
                raise SystemExit(f"{prog}: --max-images {max_images}: {err}") from None
    return ImageSet(
        images=data.images[order],
        labels=data.labels[order],
        index=data.index[order],
        class_names=data.class_names,
        source_checksum=data.source_checksum,
    )


def snapshot_path(out_dir: Path) -> Path:
    """Where the weights after the --snapshot-epoch are written (read by stages.clat); the
    epoch is recorded as ``snapshot_epochs`` in the card."""
    return Path(out_dir) / "pretrain_snapshot.safetensors"


def split_train_val(
    data: ImageSet, val_size: int, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, val) tensors: a stratified subset of ``val_size`` images, drawn with ``seed``, is
    held out for per-epoch validation (stages.clat holds out the same images)."""
    import torch

    x, y = data.tensors()
    val_idx = torch.from_numpy(stratified_subset(data.labels, val_size, seed=seed))
    is_val = torch.zeros(len(x), dtype=torch.bool)
    is_val[val_idx] = True
    return (x[~is_val], y[~is_val]), (x[is_val], y[is_val])
