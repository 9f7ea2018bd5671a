"""Per-epoch training checkpoints in one safetensors file (no pickle).

Model weights, EMA weights and optimizer tensors are stored as tensors; everything else (epoch,
history, optimizer hyper-parameters, a caller's JSON ``state`` such as CLAT's layer selection)
as JSON in the file's metadata. The file is replaced atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open
from torch import nn

from robustlab.io import write_safetensors
from robustlab.training.ema import EMA


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in state.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = f"{prefix}."
    return {k.removeprefix(start): v for k, v in tensors.items() if k.startswith(start)}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    ema: EMA | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """Write model, optimizer (and EMA) state, the last completed ``epoch``, the history rows
    and the caller's JSON-serialisable ``state``."""
    tensors = _prefixed("model", model.state_dict())
    opt_tensors, opt_meta = _split_optimizer_state(optimizer.state_dict())
    tensors.update(opt_tensors)
    if ema is not None:
        tensors.update(_prefixed("ema", ema.state_dict()))
    metadata = {
        "epoch": str(epoch),
        "history": json.dumps(history),
        "optimizer": json.dumps(opt_meta),
        "state": json.dumps(state or {}),
    }
    write_safetensors(tensors, path, metadata)


def checkpoint_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The caller's ``state`` saved with the checkpoint (read before rebuilding an optimizer
    whose parameters depend on it)."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata().get("state", "{}"))


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Restore model, optimizer (and EMA) in place; return (last completed epoch, history)."""
    p = Path(path)
    with safe_open(str(p), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(p))
    model.load_state_dict(_unprefixed("model", tensors))
    if ema is not None:
        saved = _unprefixed("ema", tensors)
        if not saved:
            raise ValueError(f"{p}: checkpoint has no EMA weights; delete it and rerun")
        ema.load_state_dict(saved)
    opt_meta = json.loads(metadata["optimizer"])
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entries in opt_meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
    return int(metadata["epoch"]), json.loads(metadata["history"])
