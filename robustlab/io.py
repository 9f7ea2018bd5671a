"""Atomic file output: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_UMASK = os.umask(0)  # at import; _umask() reads the current one where /proc has it
os.umask(_UMASK)


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would race with other threads):
    Linux's /proc/self/status, else the value at import."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return _UMASK


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    A job killed mid-write leaves at most a ``.tmp`` file, never a half-written target.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file ordinary permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_safetensors(
    tensors: dict[str, Any], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write torch tensors and string metadata to a safetensors file atomically; equal input
    gives equal bytes.

    safetensors serialises the metadata from a hash map, whose key order changes from call to
    call; the header is written again with the metadata keys sorted (the same characters, so
    the same length and data offsets).
    """
    from safetensors.torch import save

    data = save(tensors, metadata=metadata)
    with atomic_path(path) as tmp:
        tmp.write_bytes(sorted_safetensors_header(data))


def sorted_safetensors_header(data: bytes) -> bytes:
    """safetensors bytes with the header's ``__metadata__`` keys in sorted order."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    if "__metadata__" not in header:
        return data
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # not the compact form expected: keep the library's bytes
        return data
    return data[:8] + text + b" " * (size - len(text)) + data[8 + size :]


def write_table(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write an Arrow table to Parquet atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_frame(
    frame: pd.DataFrame, path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write a DataFrame to Parquet atomically (no pandas index), with optional schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    write_table(table, path)


def read_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet file, naming the file in the error if it is missing or unreadable."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such table; run the pipeline stage that writes it")
    try:
        return pq.read_table(p).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{p}: not a readable Parquet file ({err}); delete it and rerun") from err


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON atomically, keys sorted, so identical inputs give identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
