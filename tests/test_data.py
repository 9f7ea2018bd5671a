"""The data layer: IDX and CIFAR readers, checksums, downloads, subsets and the prepare stage."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robustlab.data import (
    DATASETS,
    cifar,
    fashion_mnist,
    load_dataset,
    read_images,
    stratified_subset,
)
from robustlab.data.cifar import UnsafePickleError, load_cifar, safe_unpickle
from robustlab.data.fashion_mnist import (
    CLASS_NAMES,
    download_fashion_mnist,
    load_fashion_mnist,
    read_idx,
)
from robustlab.data.fetch import ChecksumError, DataFormatError, DatasetNotFoundError
from stages import prepare

REPO = Path(__file__).resolve().parents[1]


# --- Fashion-MNIST / IDX -------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array, magic)))
    return path


def tiny_split(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), n_per_class))
    images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
    return images, labels


@pytest.fixture
def fmnist_dir(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    folder = tmp_path / "fmnist"
    folder.mkdir()
    splits = {"train": tiny_split(5, 0), "test": tiny_split(2, 1)}
    for split, (images, labels) in splits.items():
        image_name, label_name = fashion_mnist.FILES[split]
        write_idx(folder / f"{image_name}.gz", images, 0x803)
        write_idx(folder / f"{label_name}.gz", labels, 0x801)
    return folder, splits


def test_read_idx_roundtrip_gzip_and_plain(tmp_path: Path) -> None:
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", array, 0x803), 0x803), array)
    (tmp_path / "a").write_bytes(idx_bytes(array, 0x803))
    out = read_idx(tmp_path / "a")
    assert out.shape == (3, 4, 5) and out[2, 3, 4] == 59


def test_read_idx_bad_magic_names_the_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels-idx1-ubyte.gz", np.zeros(4, np.uint8), 0x802)
    with pytest.raises(
        DataFormatError, match=r"labels-idx1-ubyte\.gz: IDX magic number 0x00000802"
    ):
        read_idx(path, 0x801)


def test_read_idx_truncated_and_not_gzip(tmp_path: Path) -> None:
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(100)))
    with pytest.raises(DataFormatError, match=r"short\.gz: header declares 2 x 28 x 28 = 1568"):
        read_idx(short, 0x803)
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match=r"garbage\.gz: cannot read"):
        read_idx(garbage)


def test_load_fashion_mnist_tiny(fmnist_dir) -> None:
    folder, splits = fmnist_dir
    images, labels = splits["train"]
    data = load_dataset("fashion_mnist", "train", source_dir=folder)
    assert data.images.shape == (50, 28, 28, 1) and data.images.dtype == np.uint8
    assert np.array_equal(data.images[..., 0], images)
    assert np.array_equal(data.labels, labels) and data.labels.dtype == np.int16
    assert np.array_equal(data.index, np.arange(50))
    assert data.class_names == CLASS_NAMES and data.class_names[9] == "Ankle boot"
    expected = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert data.source_checksum == expected
    test = load_dataset("fashion_mnist", "test", source_dir=folder)
    assert len(test) == 20 and np.array_equal(test.labels, splits["test"][1])


def test_fashion_mnist_label_out_of_range(tmp_path: Path) -> None:
    images, labels = tiny_split(1, 0)
    labels[3] = 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 0x803)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, 0x801)
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte\.gz: label 10 outside"):
        load_fashion_mnist("test", tmp_path)


def test_fashion_mnist_missing_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_fashion_mnist("train", tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "datasets.fashion_mnist.source_dir" in message and "--download" in message
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_dataset("fashion_mnist", "val", source_dir=tmp_path)


@pytest.fixture
def fmnist_mirror(fmnist_dir, monkeypatch):
    """The tiny files served from a file:// mirror, with their sha256 as the expected ones."""
    folder, splits = fmnist_dir
    digests = {
        name: hashlib.sha256(gzip.decompress((folder / f"{name}.gz").read_bytes())).hexdigest()
        for name in fashion_mnist.SHA256
    }
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ("file:///nonexistent/", folder.as_uri() + "/"))
    monkeypatch.setattr(fashion_mnist, "SHA256", digests)
    return folder, splits


def test_download_fashion_mnist_verified(fmnist_mirror, tmp_path: Path) -> None:
    folder, splits = fmnist_mirror
    dest = tmp_path / "downloaded"
    assert download_fashion_mnist(dest) == dest
    names = [*fashion_mnist.FILES["train"], *fashion_mnist.FILES["test"]]
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in names)
    data = load_fashion_mnist("test", tmp_path / "via_load", download=True)
    assert np.array_equal(data.labels, splits["test"][1])
    assert (tmp_path / "via_load" / "train-images-idx3-ubyte.gz").is_file()


def test_download_fashion_mnist_checksum_mismatch(fmnist_mirror, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(fashion_mnist.SHA256, "train-labels-idx1-ubyte", "0" * 64)
    dest = tmp_path / "bad"
    with pytest.raises(
        ChecksumError, match=r"train-labels-idx1-ubyte\.gz: sha256 .* expected 0{64}"
    ):
        download_fashion_mnist(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["train-images-idx3-ubyte.gz"]  # no partial
    with pytest.raises(DatasetNotFoundError, match="Downloading into .* failed"):
        load_fashion_mnist("train", tmp_path / "bad2", download=True)


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_from_debian() -> None:
    for split, n in (("train", 60000), ("test", 10000)):
        data = load_dataset("fashion_mnist", split)
        assert data.images.shape == (n, 28, 28, 1) and data.images.dtype == np.uint8
        assert np.array_equal(np.bincount(data.labels), np.full(10, n // 10))
        assert data.images.max() == 255 and data.images.min() == 0
    assert data.labels[:5].tolist() == [9, 2, 1, 1, 6]  # the first test labels, as published
    for name, digest in fashion_mnist.SHA256.items():  # the constants match the Debian files
        with gzip.open(DEBIAN / f"{name}.gz") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest


@pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_install_data_is_quiet_when_installed() -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "install-data")], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"install-data: Fashion-MNIST already installed in {DEBIAN}\n"


# --- CIFAR ---------------------------------------------------------------------------------------


class Py2StylePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes and str as Python 2 strings, like the official (Python 2 cPickle) files."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_string(self, obj: bytes | str) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Py2StylePickler(buffer, protocol=2).dump(obj)
    # numpy 1.x named its array reconstructor numpy.core.multiarray, as in the official files
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def make_cifar(root: Path, name: str, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``root/<folder>/...`` and ``root/<archive>`` in the official layout; return data."""
    spec = cifar.SPECS[name]
    rng = np.random.default_rng(seed)
    folder = root / spec.folder
    folder.mkdir(parents=True)
    batches = {"train": [4] * len(spec.train), "test": [6]}
    if name == "cifar100":
        batches = {"train": [12], "test": [5]}
    expected = {}
    for split, sizes in batches.items():
        datas, labels_all = [], []
        for member, n in zip(getattr(spec, split), sizes, strict=True):
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, spec.num_classes, size=n)]
            batch = {b"batch_label": f"{member} of 5", b"data": data, b"filenames": [b"x.png"] * n}
            batch[spec.label_key.encode()] = labels
            if name == "cifar100":
                batch[b"coarse_labels"] = [v // 5 for v in labels]
            (folder / member).write_bytes(py2_pickle(batch))
            datas.append(data)
            labels_all.extend(labels)
        expected[split] = (np.concatenate(datas), np.array(labels_all))
    names = [f"class_{i}".encode() for i in range(spec.num_classes)]
    meta = {spec.names_key.encode(): names, b"num_cases_per_batch": 4}
    (folder / spec.meta).write_bytes(py2_pickle(meta))
    with tarfile.open(root / spec.archive, "w:gz") as tar:
        tar.add(folder, arcname=spec.folder)
    return expected


def patch_spec(monkeypatch, name: str, archive: Path) -> None:
    """Accept the test's archive as the official one, served from a file:// URL."""
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    spec = dataclasses.replace(cifar.SPECS[name], md5=md5, url=archive.as_uri())
    monkeypatch.setitem(cifar.SPECS, name, spec)


def assert_matches(data, expected: tuple[np.ndarray, np.ndarray], num_classes: int) -> None:
    raw, labels = expected
    n = len(raw)
    assert data.images.shape == (n, 32, 32, 3) and data.images.dtype == np.uint8
    # planar CHW source: channel c, row y, column x sits at c * 1024 + y * 32 + x
    assert data.images[1, 5, 7, 2] == raw[1, 2 * 1024 + 5 * 32 + 7]
    assert np.array_equal(data.images, raw.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
    assert np.array_equal(data.labels, labels)
    assert len(data.class_names) == num_classes and data.class_names[3] == "class_3"
    expected_sum = hashlib.sha256(data.images.tobytes() + labels.astype(np.uint8).tobytes())
    assert data.source_checksum == expected_sum.hexdigest()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_archive_and_folders(tmp_path: Path, monkeypatch, name: str) -> None:
    expected = make_cifar(tmp_path, name)
    spec = cifar.SPECS[name]
    archive_only = tmp_path / "archive_only"
    archive_only.mkdir()
    (tmp_path / spec.archive).rename(archive_only / spec.archive)
    patch_spec(monkeypatch, name, archive_only / spec.archive)
    k = spec.num_classes
    for split in ("train", "test"):
        assert_matches(load_dataset(name, split, source_dir=archive_only), expected[split], k)
    assert_matches(load_cifar(name, "test", archive_only / spec.archive), expected["test"], k)
    assert_matches(load_cifar(name, "train", tmp_path / spec.folder), expected["train"], k)
    assert_matches(load_cifar(name, "test", tmp_path), expected["test"], k)


def test_cifar_archive_md5_mismatch(tmp_path: Path) -> None:
    make_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()  # only the archive is usable
    with pytest.raises(
        ChecksumError, match=r"cifar-10-python\.tar\.gz: md5 [0-9a-f]{32}, expected c58f3"
    ):
        load_dataset("cifar10", "test", source_dir=tmp_path)


def test_cifar_download(tmp_path: Path, monkeypatch) -> None:
    expected = make_cifar(tmp_path / "upstream", "cifar10")
    patch_spec(monkeypatch, "cifar10", tmp_path / "upstream" / "cifar-10-python.tar.gz")
    dest = tmp_path / "dest"
    assert_matches(load_cifar("cifar10", "test", dest, download=True), expected["test"], 10)
    assert [p.name for p in dest.iterdir()] == ["cifar-10-python.tar.gz"]
    spec = dataclasses.replace(cifar.SPECS["cifar10"], md5="0" * 32)
    monkeypatch.setitem(cifar.SPECS, "cifar10", spec)
    bad = tmp_path / "bad"
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)Downloading failed.*md5 .* expected 0{32}"
    ):
        load_cifar("cifar10", "test", bad, download=True)
    assert list(bad.iterdir()) == []  # nothing half-written or unverified left behind


def test_cifar_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar100", "train", source_dir=tmp_path)
    message = str(err.value)
    assert "cifar-100-python.tar.gz" in message and "datasets.cifar100.source_dir" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    make_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_3: missing .*datasets\.cifar10"):
        load_dataset("cifar10", "train", source_dir=tmp_path / "cifar-10-batches-py")


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": RunsShell(f"touch {marker}")})
    with pytest.raises(
        UnsafePickleError, match=r"evil: refusing to load global (posix|os)\.system"
    ):
        safe_unpickle(payload, "evil")
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="object dtype"):
        safe_unpickle(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(DataFormatError, match="bad: not a readable CIFAR pickle"):
        safe_unpickle(b"\x80\x02garbage", "bad")
    arr = safe_unpickle(pickle.dumps(np.arange(5, dtype=np.uint8)))  # protocol 4 works too
    assert arr.tolist() == [0, 1, 2, 3, 4]
    make_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"test_batch: refusing to load global"):
        load_cifar("cifar10", "test", tmp_path)
    assert not marker.exists()


# --- stratified subsets --------------------------------------------------------------------------


def test_stratified_subset_counts_and_determinism() -> None:
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(4), [10, 12, 15, 9]))
    keep = stratified_subset(labels, 10, seed=3)
    assert keep.dtype == np.int64 and len(keep) == 10 and len(np.unique(keep)) == 10
    assert np.all(np.diff(keep) > 0)
    assert sorted(np.bincount(labels[keep], minlength=4).tolist()) == [2, 2, 3, 3]
    keep_all_classes = stratified_subset(labels, 36, seed=1)
    assert np.bincount(labels[keep_all_classes]).tolist() == [9, 9, 9, 9]
    assert np.array_equal(stratified_subset(labels, 10, seed=3), keep)
    assert not np.array_equal(stratified_subset(labels, 10, seed=4), keep)
    assert np.array_equal(stratified_subset(labels, None, seed=0), np.arange(46))
    assert np.array_equal(stratified_subset(labels, 46, seed=0), np.arange(46))
    assert np.array_equal(stratified_subset(labels, 1000, seed=0), np.arange(46))


def test_stratified_subset_errors() -> None:
    labels = np.repeat(np.arange(4), [10, 1, 10, 10])
    with pytest.raises(ValueError, match="subset size 3 is smaller than the number of classes"):
        stratified_subset(labels, 3, seed=0)
    with pytest.raises(ValueError, match="class 1 has 1 examples, too few for 2.*at most 4"):
        stratified_subset(labels, 8, seed=0)


# --- the prepare stage ---------------------------------------------------------------------------


def test_prepare_cli_writes_the_image_table(fmnist_dir, tmp_path: Path) -> None:
    folder, splits = fmnist_dir
    out = tmp_path / "prepared" / "train.parquet"
    command = [sys.executable, "-m", "stages.prepare", "--dataset", "fashion_mnist"]
    command += ["--split", "train", "--size", "20", "--seed", "3"]
    command += ["--source-dir", str(folder), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    assert "fashion_mnist/train: 20 of 50 images (28x28x1, 2-2 per class" in done.stderr
    table = read_images(out)
    images, labels = splits["train"]
    assert np.array_equal(table.index, stratified_subset(labels, 20, seed=3))
    assert np.array_equal(table.labels, labels[table.index])
    assert np.array_equal(table.images[..., 0], images[table.index])
    assert np.bincount(table.labels).tolist() == [2] * 10
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(out).metadata.items()}
    assert (meta["height"], meta["width"], meta["channels"]) == ("28", "28", "1")
    assert json.loads(meta["class_names"]) == CLASS_NAMES
    full = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert meta["source_checksum"] == full
    schema = pq.read_schema(out)
    types = [str(schema.field(c).type) for c in ("index", "label", "image")]
    assert types == ["int64", "int16", "binary"]
    assert not list(out.parent.glob("*.tmp"))


def test_prepare_cifar_all_in_process(tmp_path: Path, capsys) -> None:
    expected = make_cifar(tmp_path, "cifar10")
    out = tmp_path / "test.parquet"
    argv = ["--dataset", "cifar10", "--split", "test", "--size", "all", "--seed", "0"]
    prepare.main([*argv, "--source-dir", str(tmp_path / "cifar-10-batches-py"), "--out", str(out)])
    table = read_images(out)
    assert table.images.shape == (6, 32, 32, 3)
    assert np.array_equal(table.labels, expected["test"][1])
    assert "cifar10/test: 6 of 6 images (32x32x3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "abc"], "argument --size: expected a positive integer or 'all', got 'abc'"),
        (["--size", "0"], "argument --size: expected a positive integer or 'all', got '0'"),
        (["--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
        (["--split", "val"], "argument --split: invalid choice: 'val'"),
    ],
)
def test_prepare_argument_errors(args: list[str], message: str, capsys) -> None:
    base = {"--dataset": "fashion_mnist", "--split": "train", "--size": "10", "--seed": "0"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [*(x for kv in base.items() for x in kv), "--out", "x.parquet"]
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_prepare_data_errors_are_one_line_reasons(tmp_path: Path, fmnist_dir) -> None:
    out = str(tmp_path / "o.parquet")
    argv = ["--dataset", "fashion_mnist", "--split", "train", "--size", "5", "--seed", "0"]
    argv += ["--out", out]
    missing = r"stages\.prepare: Fashion-MNIST train split: .* not found"
    with pytest.raises(SystemExit, match=missing):
        prepare.main([*argv, "--source-dir", str(tmp_path / "none")])
    folder, _ = fmnist_dir
    with pytest.raises(SystemExit, match=r"stages\.prepare: subset size 5 is smaller"):
        prepare.main([*argv, "--source-dir", str(folder)])
    assert not Path(out).exists()


def test_registry_names() -> None:
    assert DATASETS.names() == ["cifar10", "cifar100", "fashion_mnist"]
    with pytest.raises(KeyError, match="unknown dataset 'svhn'; known: cifar10, cifar100"):
        load_dataset("svhn", "train")
