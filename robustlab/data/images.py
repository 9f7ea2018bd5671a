"""The image-table format shared by every stage.

A table holds ``index`` (int64, position in the source split), ``label`` (int16) and ``image``
(binary: raw uint8 bytes in HWC order). Schema metadata records ``height``, ``width``, ``channels``,
``class_names`` (JSON list) and ``source_checksum``; variant tables add their own columns
(``corruption``, ``severity``, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robustlab.io import write_table

if TYPE_CHECKING:
    import torch


@dataclass
class ImageSet:
    """Images (uint8, N x H x W x C), labels and source indices, with their metadata."""

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    class_names: list[str]
    source_checksum: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 N x H x W x C, got {self.images.dtype} {self.images.shape}"
            )
        n = len(self.images)
        if len(self.labels) != n or len(self.index) != n:
            raise ValueError(f"{n} images but {len(self.labels)} labels, {len(self.index)} indices")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels)."""
        _, h, w, c = self.images.shape
        return h, w, c

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float32 N x C x H x W in [0, 1], labels as int64."""
        import torch  # imported here: the table stages that never build tensors skip torch

        x = torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(), torch.from_numpy(self.labels.astype(np.int64))


def to_table(images: ImageSet) -> pa.Table:
    """Arrow table in the shared schema."""
    h, w, c = images.shape
    flat = images.images.reshape(len(images), -1)
    columns: dict[str, pa.Array] = {
        "index": pa.array(images.index.astype(np.int64)),
        "label": pa.array(images.labels.astype(np.int16)),
        "image": pa.array([row.tobytes() for row in flat], type=pa.binary()),
    }
    for name, values in images.extra.items():
        columns[name] = pa.array(values)
    metadata = {
        "height": str(h),
        "width": str(w),
        "channels": str(c),
        "class_names": json.dumps(images.class_names),
        "source_checksum": images.source_checksum,
    }
    return pa.table(columns).replace_schema_metadata(metadata)


def write_images(images: ImageSet, path: str | os.PathLike[str]) -> None:
    """Write an image table atomically."""
    write_table(to_table(images), path)


def read_images(path: str | os.PathLike[str]) -> ImageSet:
    """Read an image table written by :func:`write_images`."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such image table; run the prepare stage first")
    table = pq.read_table(p)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    try:
        h, w, c = int(meta["height"]), int(meta["width"]), int(meta["channels"])
    except KeyError as err:
        raise ValueError(f"{p}: schema metadata lacks {err}; not an image table") from None
    raw = table.column("image").to_pylist()
    images = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), h, w, c)
    extra = {
        name: table.column(name).to_numpy()
        for name in table.column_names
        if name not in ("index", "label", "image")
    }
    return ImageSet(
        images=images.copy(),
        labels=table.column("label").to_numpy().astype(np.int16),
        index=table.column("index").to_numpy().astype(np.int64),
        class_names=json.loads(meta.get("class_names", "[]")),
        source_checksum=meta.get("source_checksum", ""),
        extra=extra,
    )
