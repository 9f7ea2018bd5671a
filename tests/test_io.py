"""Atomic writes: nothing half-written, ordinary permissions, errors naming the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from robustlab.io import (
    atomic_path,
    read_frame,
    sorted_safetensors_header,
    write_frame,
    write_safetensors,
)


def test_failed_write_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_file(tmp_path):
    target = tmp_path / "t.parquet"
    write_frame(pd.DataFrame({"a": [1, 2]}), target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"garbage")
        raise RuntimeError("killed")
    assert read_frame(target)["a"].tolist() == [1, 2]


def test_written_files_have_ordinary_permissions(tmp_path):
    target = tmp_path / "t.parquet"
    write_frame(pd.DataFrame({"a": [1]}), target)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_files_follow_the_umask_of_the_moment_they_are_written(tmp_path):
    """A process forked after the import (a warm-started job) may have another umask."""
    previous = os.umask(0o077)
    try:
        write_frame(pd.DataFrame({"a": [1]}), tmp_path / "private.parquet")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "private.parquet").stat().st_mode) == 0o600


def test_unreadable_table_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="bad.parquet"):
        read_frame(bad)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        read_frame(tmp_path / "missing.parquet")


def test_equal_tensors_and_metadata_give_equal_safetensors_bytes(tmp_path):
    """safetensors orders metadata keys by a hash map, anew on every call; ours are sorted."""
    import torch
    from safetensors import safe_open

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.int64)}
    metadata = {k: f'{{"v": "{k}"}}' for k in ("dataset", "arch", "technique", "crafts", "epoch")}
    written = []
    for i in range(8):
        write_safetensors(tensors, tmp_path / f"{i}.safetensors", metadata)
        written.append((tmp_path / f"{i}.safetensors").read_bytes())
    assert all(w == written[0] for w in written)
    with safe_open(str(tmp_path / "0.safetensors"), framework="pt") as handle:
        assert handle.metadata() == metadata
        assert torch.equal(handle.get_tensor("b"), tensors["b"])
        assert torch.equal(handle.get_tensor("a"), tensors["a"])
    size = int.from_bytes(written[0][:8], "little")
    header = written[0][8 : 8 + size].decode().rstrip()
    assert header.index('"arch"') < header.index('"crafts"') < header.index('"technique"')


def test_a_header_without_metadata_is_left_as_it_is():
    import torch
    from safetensors.torch import save

    data = save({"x": torch.zeros(3)})
    assert sorted_safetensors_header(data) == data
