"""Fashion-MNIST from its gzip IDX files (Debian's ``dataset-fashion-mnist`` or a download).

IDX: a big-endian magic number (0x00000803 for images, 0x00000801 for labels: two zero bytes,
the type code 0x08 = uint8, the number of dimensions), one 4-byte big-endian size per dimension,
then the uint8 data in row-major order.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
from pathlib import Path

import numpy as np

from robustlab.data.fetch import (
    DEFAULT_RAW_ROOT,
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
    array_checksum,
    check_split,
    download,
)
from robustlab.data.images import ImageSet

#: Where Debian's ``dataset-fashion-mnist`` installs the files.
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Where the files are looked for next, and downloaded to, when no source folder is given.
DOWNLOAD_DIR = DEFAULT_RAW_ROOT / "fashion_mnist"

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

#: (images file, labels file) of each split, without the ``.gz`` suffix.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: sha256 of each *decompressed* file. Debian re-compresses the upstream .gz files, so only the
#: decompressed content is comparable; these were computed from the Debian package and agree with
#: the upstream files (their decompressed md5s, f4a8712d..., 9018921c..., 8181f547..., 15d48437...,
#: are the ones torchvision checks for Fashion-MNIST).
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

#: Upstream (zalando research) locations, tried in order; a file name is appended.
MIRRORS = (
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

_HOW_TO_FIX = (
    "Do one of:\n"
    "  - apt-get install dataset-fashion-mnist   (puts the files in {system})\n"
    "  - set datasets.fashion_mnist.source_dir in params.yaml to a folder holding the four IDX "
    ".gz files ({files})\n"
    "  - run with network access and downloading enabled (stages.prepare --download), which "
    "fetches them into {download}"
)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{path}: cannot read ({err}); delete it and fetch it again") from err


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read a uint8 IDX file (gzip-compressed if its name ends in ``.gz``) into an array."""
    p = Path(path)
    raw = _read_bytes(p)
    if len(raw) < 4:
        raise DataFormatError(f"{p}: {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataFormatError(
            f"{p}: IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}; "
            "wrong or corrupt file"
        )
    if raw[:3] != b"\x00\x00\x08":
        raise DataFormatError(f"{p}: magic 0x{magic:08x} is not that of a uint8 IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{p}: truncated IDX header ({ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise DataFormatError(
            f"{p}: header declares {' x '.join(map(str, dims))} = {math.prod(dims)} bytes, "
            f"file holds {len(raw) - header}; truncated or corrupt file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _locate(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_split(image_path: Path, label_path: Path) -> ImageSet:
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFormatError(f"{image_path}: images of shape {images.shape}, expected N x 28 x 28")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(
            f"{label_path}: {labels.shape} labels for {len(images)} images in {image_path}"
        )
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise DataFormatError(f"{label_path}: label {labels.max()} outside 0..9")
    images = images[..., np.newaxis]
    return ImageSet(
        images=images,
        labels=labels.astype(np.int16),
        index=np.arange(len(images), dtype=np.int64),
        class_names=list(CLASS_NAMES),
        source_checksum=array_checksum(images, labels),
    )


def load_fashion_mnist(
    split: str, source_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """Load a Fashion-MNIST split as N x 28 x 28 x 1 uint8 images with the 10 class names.

    Without ``source_dir`` the files are looked for in :data:`SYSTEM_DIR`, then in
    :data:`DOWNLOAD_DIR`. With ``download``, missing files are fetched (and verified) into
    ``source_dir`` or :data:`DOWNLOAD_DIR`. ``source_checksum`` is the sha256 of the decompressed
    pixel bytes followed by the label bytes.
    """
    check_split(split)
    folders = [Path(source_dir)] if source_dir is not None else [SYSTEM_DIR, DOWNLOAD_DIR]
    for folder in folders:
        paths = [_locate(folder, name) for name in FILES[split]]
        if paths[0] is not None and paths[1] is not None:
            return _read_split(paths[0], paths[1])
    missing = ", ".join(f"{name}.gz" for name in FILES[split])
    where = " or ".join(str(f) for f in folders)
    dest = folders[0] if source_dir is not None else DOWNLOAD_DIR
    files = ", ".join(f"{n}.gz" for n in SHA256)
    how = _HOW_TO_FIX.format(system=SYSTEM_DIR, files=files, download=dest)
    message = f"Fashion-MNIST {split} split: {missing} not found in {where}.\n{how}"
    if not download:
        raise DatasetNotFoundError(message)
    try:
        download_fashion_mnist(dest)
    except (OSError, ChecksumError) as err:
        raise DatasetNotFoundError(f"{message}\nDownloading into {dest} failed: {err}") from err
    image_path, label_path = (dest / f"{name}.gz" for name in FILES[split])
    return _read_split(image_path, label_path)


def _verify_gz(path: Path, name: str) -> None:
    """Raise unless the gzip file at ``path`` decompresses to the upstream ``name``."""
    try:
        with gzip.open(path, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{name}.gz: not a readable gzip file ({err})") from err
    if actual != SHA256[name]:
        raise ChecksumError(
            f"{name}.gz: sha256 of the decompressed content is {actual}, expected {SHA256[name]}"
        )


def download_fashion_mnist(dest_dir: str | os.PathLike[str]) -> Path:
    """Fetch the four upstream Fashion-MNIST .gz files into ``dest_dir``, verifying each.

    Each file's decompressed sha256 must match :data:`SHA256`; files already present and correct
    are kept. Every file is written atomically. Returns ``dest_dir``.
    """
    dest = Path(dest_dir)
    for name in SHA256:
        target = dest / f"{name}.gz"
        if target.is_file():
            try:
                _verify_gz(target, name)
                continue
            except (ChecksumError, DataFormatError):
                pass  # a stale or broken copy: fetch it again
        download((m + f"{name}.gz" for m in MIRRORS), target, lambda p, n=name: _verify_gz(p, n))
    return dest
