"""Image-folder datasets (robustlab.data.image_folder, stages.prepare --kind image_folder) on
small synthetic folders the tests write: mixed sizes, greyscale and RGB, PNG and JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from robustlab.data import DATASET_KINDS, ImageFolder, load_image_folder, read_images
from robustlab.data.fetch import DataFormatError, DatasetNotFoundError
from robustlab.data.image_folder import centre_crop
from robustlab.noise.natural.tables import param_for, resolution_class
from stages import prepare
from tests.pipeline_helpers import copy_repo, run

RED = (200, 10, 30)


def _save(path: Path, mode: str, size: tuple[int, int], colour, fmt: str) -> None:
    """A solid-colour image of ``size`` (width, height) in ``mode`` (RGB or L)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, fmt)


def write_folder(root: Path) -> Path:
    """train/ with classes cat (3 images) and dog (3), val/ with 2 + 1; sizes, modes and formats
    mixed. Solid colours survive any resize and crop unchanged, so every pixel is known."""
    _save(root / "train/cat/a.png", "RGB", (40, 30), RED, "PNG")
    _save(root / "train/cat/b.jpg", "L", (30, 50), 77, "JPEG")
    _save(root / "train/cat/c.PNG", "L", (64, 64), 150, "PNG")
    _save(root / "train/dog/d.jpeg", "RGB", (50, 50), (0, 128, 255), "JPEG")
    _save(root / "train/dog/e.png", "RGB", (20, 90), (5, 6, 7), "PNG")
    _save(root / "train/dog/f.png", "L", (100, 20), 9, "PNG")
    _save(root / "val/cat/g.png", "RGB", (33, 33), (1, 2, 3), "PNG")
    _save(root / "val/cat/h.png", "L", (25, 60), 200, "PNG")
    _save(root / "val/dog/i.png", "RGB", (70, 21), (50, 60, 70), "PNG")
    # skipped: hidden files and files that are not .jpg/.jpeg/.png
    (root / "train/cat/.DS_Store").write_bytes(b"\0\1")
    (root / "train/dog/notes.txt").write_text("not an image")
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_folder(tmp_path / "images")


def test_kind_is_registered():
    assert DATASET_KINDS.names() == ["image_folder"]
    assert DATASET_KINDS.get("image_folder") is ImageFolder


def test_folder_prepares_to_exact_shapes_labels_and_pixels(folder):
    train = load_image_folder(folder, "train", image_size=16, resize=20)
    assert train.images.shape == (6, 16, 16, 3) and train.images.dtype == np.uint8
    # classes: sorted folder names; files: sorted per class, the .txt and hidden files skipped
    assert train.class_names == ["cat", "dog"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.index.tolist() == [0, 1, 2, 3, 4, 5]
    # every image is one solid colour: greyscale g becomes (g, g, g)
    colours = [tuple(int(v) for v in img[8, 8]) for img in train.images]
    assert colours[0] == RED and colours[2] == (150, 150, 150) and colours[4] == (5, 6, 7)
    assert colours[5] == (9, 9, 9)
    for img, colour in zip(train.images, colours, strict=True):
        assert (img == np.array(colour, dtype=np.uint8)).all()
    # the JPEG solid colours within JPEG's rounding
    assert np.abs(np.array(colours[1]) - 77).max() <= 2
    assert np.abs(np.array(colours[3]) - (0, 128, 255)).max() <= 3

    # the pipeline's test split is the folder's val/, numbered with train/'s classes
    test = load_image_folder(folder, "test", image_size=16)
    assert test.labels.tolist() == [0, 0, 1] and test.class_names == ["cat", "dog"]
    assert test.images[1, 0, 0].tolist() == [200, 200, 200]


def test_greyscale_folder_has_one_channel(folder):
    grey = load_image_folder(folder, "train", image_size=16, channels=1)
    assert grey.images.shape == (6, 16, 16, 1)
    # PIL's luma of RED: (200 * 299 + 10 * 587 + 30 * 114) / 1000 = 69.29 -> 69
    assert (grey.images[0] == 69).all()
    assert (grey.images[2] == 150).all()


def test_resize_then_centre_crop_geometry():
    # 40 x 20 image: columns 0-19 black, 20-39 white. resize 20 keeps it (shorter side 20);
    # the 16 px crop starts at column round((40 - 16) / 2) = 12 and row round((20 - 16) / 2) = 2,
    # so it holds columns 12-19 (black, 8 of them) then 20-27 (white, 8)
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, 20:] = 255
    out = centre_crop(Image.fromarray(pixels), resize=20, image_size=16)
    assert out.shape == (16, 16, 1)
    assert (out[:, :8, 0] == 0).all() and (out[:, 8:, 0] == 255).all()
    # 30 wide x 60 tall, resize 20: 20 x int(20 * 60 / 30) = 20 x 40, crop rows 12-27
    rows = np.repeat(np.arange(60, dtype=np.uint8)[:, None], 30, axis=1) * 4
    tall = centre_crop(Image.fromarray(rows), resize=20, image_size=20)
    assert tall.shape == (20, 20, 1)
    assert (np.diff(tall[:, 10, 0].astype(int)) > 0).all()  # still increasing top to bottom


def test_same_folder_gives_identical_table_bytes(folder, tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.parquet"
        prepare.main(
            ["--dataset", "mine", "--kind", "image_folder", "--image-size", "16", "--resize",
             "24", "--split", "train", "--size", "4", "--seed", "3", "--source-dir",
             str(folder), "--out", str(out)]
        )  # fmt: skip
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    table = read_images(tmp_path / "a.parquet")
    # a stratified subset of 4: two per class, drawn with the seed
    assert len(table) == 4 and np.bincount(table.labels).tolist() == [2, 2]
    assert table.shape == (16, 16, 3) and table.class_names == ["cat", "dog"]
    assert table.source_checksum == ImageFolder(folder, "train").checksum()


def test_checksum_follows_the_folder_listing_and_bytes(folder):
    before = ImageFolder(folder, "train").checksum()
    assert ImageFolder(folder, "train").checksum() == before
    _save(folder / "train/dog/e.png", "RGB", (20, 90), (5, 6, 8), "PNG")
    edited = ImageFolder(folder, "train").checksum()
    assert edited != before
    (folder / "train/dog/e.png").rename(folder / "train/dog/e2.png")
    assert ImageFolder(folder, "train").checksum() not in (before, edited)


def test_unreadable_file_is_named(folder, tmp_path):
    broken = folder / "train/dog/broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    with pytest.raises(DataFormatError, match="broken.jpg: not an image PIL can read") as info:
        load_image_folder(folder, "train", image_size=16)
    assert isinstance(info.value, ValueError) and str(broken) in str(info.value)
    with pytest.raises(SystemExit, match="broken.jpg"):
        prepare.main(
            ["--dataset", "mine", "--kind", "image_folder", "--image-size", "16", "--split",
             "train", "--size", "all", "--seed", "0", "--source-dir", str(folder), "--out",
             str(tmp_path / "x.parquet")]
        )  # fmt: skip
    assert not (tmp_path / "x.parquet").exists()


def test_bad_folders_and_options_are_refused(folder, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere/train: no such folder"):
        ImageFolder(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match=r"resize \(10\) must be at least image_size \(16\)"):
        load_image_folder(folder, "train", image_size=16, resize=10)
    with pytest.raises(ValueError, match="channels must be 1"):
        load_image_folder(folder, "train", image_size=16, channels=2)
    (folder / "val/bird").mkdir()
    with pytest.raises(DataFormatError, match="class folders bird are not in"):
        ImageFolder(folder, "test")
    (folder / "train/bird").mkdir()
    with pytest.raises(DataFormatError, match="bird: holds no .jpg/.jpeg/.png images"):
        ImageFolder(folder, "train")


def test_stage_refuses_unregistered_names_without_a_kind(tmp_path, capsys):
    with pytest.raises(SystemExit):
        prepare.parse_args(
            ["--dataset", "mine", "--split", "train", "--size", "all", "--seed", "0", "--out",
             str(tmp_path / "x.parquet")]
        )  # fmt: skip
    assert "for a folder of own images add --kind" in capsys.readouterr().err


def test_224_px_images_use_the_imagenet_c_table(folder):
    images = load_image_folder(folder, "test", image_size=224, resize=256).images
    assert images.shape == (3, 224, 224, 3)
    assert resolution_class(224, 224) == "large"
    # ImageNet-C's make_imagenet_c.py: defocus_blur severity 1 is (radius 3, alias blur 0.1),
    # gaussian_noise severity 3 sigma 0.18 (CIFAR-10-C's are (0.3, 0.4) and 0.08)
    assert tuple(param_for("defocus_blur", images, 1)) == (3, 0.1)
    assert param_for("gaussian_noise", images, 3) == 0.18


def test_imagenette_preset_dry_run_on_a_synthetic_tree(tmp_path):
    """The preset plans its grid, its prepare jobs read the folder at 224 px (256 resize)."""
    repo = copy_repo(tmp_path / "repo")
    tree = tmp_path / "imagenette"
    for split, count in (("train", 3), ("val", 2)):
        for wnid in ("n01440764", "n02102040"):
            for i in range(count):
                _save(tree / split / wnid / f"{i}.JPEG", "RGB", (320, 240), (i, 0, 0), "JPEG")
    override = tmp_path / "folder.yaml"
    override.write_text(yaml.safe_dump({"datasets": {"imagenette": {"source_dir": str(tree)}}}))
    args = ["snakemake", "-n", "-p", "--cores", "1", "--configfile", "presets/imagenette.yaml"]
    proc = run([*args, str(override)], repo)
    text = proc.stdout + proc.stderr
    prepares = [line for line in text.splitlines() if "-m stages.launch prepare " in line]
    assert len(prepares) == 2
    for line in prepares:
        assert "--dataset imagenette" in line and f"--source-dir {tree}" in line
        assert "--kind image_folder --image-size 224 --resize 256 --channels 3" in line
    # the attacks run at the folder dataset's default levels: RobustART's ImageNet budgets
    attacks = "\n".join(line for line in text.splitlines() if "-m stages.launch attack " in line)
    assert "--level 3 --eps 0.03137254901960784" in attacks  # 8/255
    assert "--level 1 --eps 0.5 " in attacks and "--level 3 --eps 1600.0 " in attacks
