"""CIFAR-10 and CIFAR-100 from the official "python version" archives of the Toronto site.

Each archive holds one folder (``cifar-10-batches-py`` / ``cifar-100-python``) of Python pickles:
dicts with bytes keys, ``b"data"`` a uint8 N x 3072 array (the 1024 red, then green, then blue
values of a 32 x 32 image, row-major) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"``
(CIFAR-100) a list of ints; the meta file lists the class names.

The pickles are read with a restricted unpickler. Unpickling runs whatever callables the file
names, so an unrestricted ``pickle.load`` of a downloaded or user-supplied file is arbitrary code
execution; the only maintained reader of these archives (torchvision) cannot be installed here.
The files only ever need numpy's array reconstruction, so that is all :class:`_NumpyUnpickler`
lets a pickle reach; any other global is refused before it is imported.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.data.fetch import (
    DEFAULT_RAW_ROOT,
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
    array_checksum,
    check_split,
    download,
    file_digest,
)
from robustlab.data.images import ImageSet


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant's files are and how they are laid out."""

    name: str
    title: str
    archive: str
    md5: str
    url: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    num_classes: int


_TORONTO = "https://www.cs.toronto.edu/~kriz/"

SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        name="cifar10",
        title="CIFAR-10",
        archive="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        url=_TORONTO + "cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        num_classes=10,
    ),
    "cifar100": CifarSpec(
        name="cifar100",
        title="CIFAR-100",
        archive="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        url=_TORONTO + "cifar-100-python.tar.gz",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
    ),
}


class UnsafePickleError(DataFormatError):
    """A pickle referenced something other than numpy array reconstruction."""


def _plain_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError(f"refusing a numpy object dtype ({dtype})")
    return dtype


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return {
        # The official files were written by numpy 1.x under Python 2 and name numpy.core.
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }


class _NumpyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays need (see the module docstring)."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only numpy array reconstruction "
                "is allowed in a CIFAR pickle"
            ) from None


def safe_unpickle(data: bytes, origin: str = "<bytes>") -> Any:
    """Unpickle ``data`` (Python 2 strings as bytes) allowing only numpy arrays as globals."""
    try:
        return _NumpyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{origin}: {err}") from None
    except Exception as err:  # a malformed pickle raises almost anything
        raise DataFormatError(f"{origin}: not a readable CIFAR pickle ({err!r})") from err


def _as_str_keys(obj: Any, origin: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataFormatError(f"{origin}: holds a {type(obj).__name__}, expected a dict")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_archive(spec: CifarSpec, archive: Path, names: list[str]) -> dict[str, bytes]:
    actual = file_digest(archive, "md5")
    if actual != spec.md5:
        raise ChecksumError(
            f"{archive}: md5 {actual}, expected {spec.md5} for the official {spec.archive}; "
            "the file is corrupt or a different archive: delete it and download it again"
        )
    wanted = {f"{spec.folder}/{name}": name for name in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is not None and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        found[name] = f.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataFormatError(f"{archive}: not a readable tar.gz archive ({err})") from err
    missing = [f"{spec.folder}/{n}" for n in names if n not in found]
    if missing:
        raise DataFormatError(f"{archive}: lacks {', '.join(missing)}")
    return found


def _read_folder(spec: CifarSpec, folder: Path, names: list[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{path}: missing from the extracted {spec.title} folder; extract "
                f"{spec.archive} again or point datasets.{spec.name}.source_dir in params.yaml "
                "at a complete copy"
            )
        found[name] = path.read_bytes()
    return found


def _locate(spec: CifarSpec, root: Path) -> Path | None:
    """The archive or the extracted folder under ``root`` (``root`` may be either itself)."""
    if root.is_file():
        return root
    for folder in (root, root / spec.folder):
        if (folder / spec.meta).is_file():
            return folder
    archive = root / spec.archive
    return archive if archive.is_file() else None


def _decode(spec: CifarSpec, split: str, raw: dict[str, bytes], origin: Path) -> ImageSet:
    meta = _as_str_keys(safe_unpickle(raw[spec.meta], f"{origin}/{spec.meta}"), spec.meta)
    names = meta.get(spec.names_key)
    if not isinstance(names, list) or len(names) != spec.num_classes:
        raise DataFormatError(
            f"{origin}/{spec.meta}: expected {spec.num_classes} class names "
            f"under {spec.names_key!r}"
        )
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    data_parts, label_parts = [], []
    for name in getattr(spec, split):
        where = f"{origin}/{name}"
        batch = _as_str_keys(safe_unpickle(raw[name], where), where)
        data, labels = batch.get("data"), batch.get(spec.label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise DataFormatError(f"{where}: 'data' is not a uint8 N x 3072 array")
        if data.shape[1] != 3 * 32 * 32 or labels is None or len(labels) != len(data):
            raise DataFormatError(
                f"{where}: data of shape {data.shape} with "
                f"{'no' if labels is None else len(labels)} {spec.label_key}"
            )
        data_parts.append(data)
        label_parts.append(np.asarray(labels, dtype=np.int64))
    labels = np.concatenate(label_parts)
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataFormatError(f"{origin}: {spec.label_key} outside 0..{spec.num_classes - 1}")
    images = np.concatenate(data_parts).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    images = np.ascontiguousarray(images)
    return ImageSet(
        images=images,
        labels=labels.astype(np.int16),
        index=np.arange(len(images), dtype=np.int64),
        class_names=class_names,
        source_checksum=array_checksum(images, labels),
    )


def _missing_message(spec: CifarSpec, split: str, root: Path) -> str:
    return (
        f"{spec.title} {split} split: neither {spec.archive} nor its extracted {spec.folder} "
        f"folder found in {root}.\nDo one of:\n"
        f"  - download {spec.url} (md5 {spec.md5}) and set datasets.{spec.name}.source_dir in "
        f"params.yaml to the folder holding it (or to the extracted {spec.folder} folder)\n"
        f"  - run with network access and downloading enabled (stages.prepare --download), which "
        f"fetches it into {root}"
    )


def load_cifar(
    name: str, split: str, source_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """Load CIFAR-10 (``name="cifar10"``) or CIFAR-100 (``"cifar100"``, fine labels).

    ``source_dir`` may be the folder holding the official ``.tar.gz``, the extracted folder, the
    folder containing it, or the archive itself; without it ``data/raw/<name>`` is used. An archive
    is md5-verified before it is read. With ``download`` a missing archive is fetched from the
    Toronto site, verified and renamed into place. Images come out N x 32 x 32 x 3 uint8 (HWC).
    """
    spec = SPECS[name]
    check_split(split)
    root = Path(source_dir) if source_dir is not None else DEFAULT_RAW_ROOT / name
    source = _locate(spec, root)
    if source is None:
        message = _missing_message(spec, split, root)
        if not download:
            raise DatasetNotFoundError(message)
        source = root / spec.archive
        try:
            _download_archive(spec, source)
        except (OSError, ChecksumError) as err:
            raise DatasetNotFoundError(f"{message}\nDownloading failed: {err}") from err
    names = [spec.meta, *getattr(spec, split)]
    if source.is_file():
        return _decode(spec, split, _read_archive(spec, source, names), source)
    return _decode(spec, split, _read_folder(spec, source, names), source)


def _download_archive(spec: CifarSpec, dest: Path) -> None:
    def verify(path: Path) -> None:
        actual = file_digest(path, "md5")
        if actual != spec.md5:
            raise ChecksumError(f"{spec.archive}: md5 {actual}, expected {spec.md5}")

    download([spec.url], dest, verify)


def download_cifar(name: str, dest_dir: str | os.PathLike[str]) -> Path:
    """Fetch the official archive of ``cifar10``/``cifar100`` into ``dest_dir`` (md5-verified)."""
    spec = SPECS[name]
    dest = Path(dest_dir) / spec.archive
    if not (dest.is_file() and file_digest(dest, "md5") == spec.md5):
        _download_archive(spec, dest)
    return dest


def load_cifar10(
    split: str, source_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """CIFAR-10: 50000 train / 10000 test images, 10 classes (see :func:`load_cifar`)."""
    return load_cifar("cifar10", split, source_dir, download)


def load_cifar100(
    split: str, source_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """CIFAR-100 with its 100 fine labels (see :func:`load_cifar`)."""
    return load_cifar("cifar100", split, source_dir, download)
