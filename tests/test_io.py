"""Atomic writes: nothing half-written, ordinary permissions, errors naming the file."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from robustlab.io import atomic_path, read_frame, write_frame


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


def test_unreadable_table_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="bad.parquet"):
        read_frame(bad)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        read_frame(tmp_path / "missing.parquet")
