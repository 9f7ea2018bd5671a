"""Shared helpers of the dataset readers: errors, hashing, verified atomic downloads."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from robustlab.io import atomic_path

#: Where a dataset is looked for, and downloaded to, when no source folder is given:
#: ``data/raw/<dataset>`` relative to the working directory (the pipeline runs from the repo root).
DEFAULT_RAW_ROOT = Path("data/raw")

SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """The source files of a dataset are missing; the message says how to get them."""


class ChecksumError(ValueError):
    """A file's content does not match its published checksum."""


class DataFormatError(ValueError):
    """A source file is not in the format its reader expects."""


def check_split(split: str) -> None:
    """Raise a clear error unless ``split`` is ``train`` or ``test``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def array_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 hex of a split's decompressed source arrays: uint8 HWC image bytes, then uint8 labels.

    For an IDX source this equals the sha256 of the images file's pixel data followed by the
    labels file's label bytes (the decompressed files without their headers).
    """
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("labels must lie in 0..255 to be hashed as uint8")
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.asarray(labels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    urls: Iterable[str],
    dest: str | os.PathLike[str],
    verify: Callable[[Path], None],
    timeout: float = 60.0,
) -> Path:
    """Fetch the first URL that works into ``dest`` atomically; ``verify(tmp)`` must accept it.

    ``verify`` raises :class:`ChecksumError` for a wrong file; a mirror that gives a wrong file or
    cannot be reached is skipped. Nothing is left at ``dest`` unless a verified file was written.
    """
    target = Path(dest)
    failures: list[str] = []
    bad_content = False
    for url in urls:
        try:
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                    shutil.copyfileobj(response, f, 1 << 20)
                verify(tmp)
            return target
        except (OSError, ChecksumError, DataFormatError) as err:
            bad_content = bad_content or not isinstance(err, OSError)
            failures.append(f"{url}: {err}")
    error = ChecksumError if bad_content else OSError
    raise error(f"could not download {target.name}:\n  " + "\n  ".join(failures))
