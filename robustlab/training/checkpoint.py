"""Per-epoch training checkpoints in one safetensors file (no pickle).

Model weights and optimizer tensors are stored as tensors; everything else (epoch, history,
optimizer hyper-parameters) as JSON in the file's metadata. The file is replaced atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from robustlab.io import atomic_path


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


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
) -> None:
    """Write model, optimizer state, the last completed ``epoch`` and the history rows."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _split_optimizer_state(optimizer.state_dict())
    tensors.update(opt_tensors)
    metadata = {
        "epoch": str(epoch),
        "history": json.dumps(history),
        "optimizer": json.dumps(opt_meta),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, list[dict[str, Any]]]:
    """Restore model and optimizer in place; return (last completed epoch, history rows)."""
    p = Path(path)
    with safe_open(str(p), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(p))
    model.load_state_dict(
        {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    )
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
