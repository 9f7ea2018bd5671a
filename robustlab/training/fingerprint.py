"""Run identities: a checkpoint is resumed only by the run that wrote it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import torch


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def fingerprint(
    meta: Mapping[str, Any],
    contents: Mapping[str, torch.Tensor] | None = None,
    shapes: Mapping[str, torch.Tensor] | None = None,
) -> str:
    """sha256 of the JSON ``meta`` (dataclasses as dicts), the bytes of ``contents`` (data,
    initial weights) and the names, shapes and dtypes of ``shapes`` (a model's state)."""
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=_jsonable).encode())
    for name, tensor in sorted((contents or {}).items()):
        digest.update(name.encode())
        digest.update(
            memoryview(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        )
    entries: Iterable[tuple[str, torch.Tensor]] = sorted((shapes or {}).items())
    for name, tensor in entries:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    return digest.hexdigest()
