"""Image folders in the ImageNet layout: ``<root>/<split folder>/<class>/<image>``.

``root/train/`` and ``root/val/`` hold one sub-folder per class (Imagenette: WordNet ids such as
``n01440764``) of JPEG or PNG files. The pipeline's ``train`` split reads ``train/`` and its
``test`` split reads ``val/``. Class names are the sorted sub-folder names of ``train/``, so both
splits number the classes alike. Files are taken in sorted order (class, then file name); a
file's position in that listing is its ``index``. Hidden files and files that are not ``.jpg``,
``.jpeg`` or ``.png`` (any case) are skipped.

Every image is decoded with PIL, converted to RGB (``channels=3``: greyscale images are
replicated) or to greyscale (``channels=1``), its shorter side resized to ``resize`` px
(bilinear, antialiased) and its centre ``image_size`` x ``image_size`` crop kept, as torchvision's
``Resize(resize)`` + ``CenterCrop(image_size)`` do. RobustART evaluates ImageNet at
``resize=256, image_size=224`` (the 8/7 ratio); ``resize=None`` resizes the shorter side to
``image_size`` itself.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from robustlab.data.fetch import DataFormatError, DatasetNotFoundError, check_split
from robustlab.data.images import ImageSet

#: pipeline split -> the sub-folder of the dataset folder that holds it
FOLDER_SPLITS = {"train": "train", "test": "val"}
#: suffixes (lower case) of the files read as images
EXTENSIONS = (".jpg", ".jpeg", ".png")
CHANNELS = (1, 3)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS
    )


class ImageFolder:
    """The listing of one split of an image folder; :meth:`load` decodes (a subset of) it."""

    def __init__(self, root: str | os.PathLike[str], split: str) -> None:
        check_split(split)
        self.root = Path(root)
        self.split = split
        self.folder = self.root / FOLDER_SPLITS[split]
        train = self.root / FOLDER_SPLITS["train"]
        for needed in (train, self.folder):
            if not needed.is_dir():
                raise DatasetNotFoundError(
                    f"{needed}: no such folder. An image folder holds train/ and val/, each with "
                    f"one sub-folder of .jpg/.png images per class; point the dataset's "
                    f"source_dir at such a folder"
                )
        self.class_names = [p.name for p in _visible_dirs(train)]
        if not self.class_names:
            raise DataFormatError(f"{train}: no class sub-folders; expected one per class")
        extra = sorted({p.name for p in _visible_dirs(self.folder)} - set(self.class_names))
        if extra:
            raise DataFormatError(
                f"{self.folder}: class folders {', '.join(extra)} are not in {train}; both "
                f"splits must use the classes of train/"
            )
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(self.class_names):
            found = _image_files(self.folder / name) if (self.folder / name).is_dir() else []
            if not found and split == "train":
                raise DataFormatError(
                    f"{self.folder / name}: holds no {'/'.join(EXTENSIONS)} images; add images "
                    f"or remove the class folder"
                )
            files += found
            labels += [label] * len(found)
        if not files:
            raise DataFormatError(f"{self.folder}: holds no {'/'.join(EXTENSIONS)} images")
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int16)

    def __len__(self) -> int:
        return len(self.files)

    def checksum(self) -> str:
        """sha256 hex of the split's listing and bytes: per file, in listing order, its path
        relative to the split folder (UTF-8), a NUL byte, its length (8 bytes big-endian) and its
        bytes. Renaming, adding, removing or editing an image changes it."""
        digest = hashlib.sha256()
        for path in self.files:
            data = path.read_bytes()
            digest.update(path.relative_to(self.folder).as_posix().encode() + b"\0")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.hexdigest()

    def load(
        self,
        indices: np.ndarray | None = None,
        *,
        image_size: int,
        resize: int | None = None,
        channels: int = 3,
        progress: bool = False,
    ) -> ImageSet:
        """The images at ``indices`` (positions in the listing; None: all), N x S x S x C uint8.

        Raises :class:`DataFormatError` (a ValueError) naming the first file PIL cannot read.
        """
        resize = image_size if resize is None else resize
        check_geometry(image_size, resize, channels)
        keep = np.arange(len(self), dtype=np.int64) if indices is None else np.asarray(indices)
        keep = keep.astype(np.int64)
        out = np.empty((len(keep), image_size, image_size, channels), dtype=np.uint8)
        chosen = [self.files[i] for i in keep]
        if progress:
            from tqdm import tqdm

            chosen = tqdm(chosen, desc=f"decode {self.folder}", file=sys.stderr)
        for row, path in enumerate(chosen):
            out[row] = centre_crop(decode(path, channels), resize, image_size)
        return ImageSet(
            images=out,
            labels=self.labels[keep],
            index=keep,
            class_names=list(self.class_names),
            source_checksum=self.checksum(),
        )


def check_geometry(image_size: int, resize: int, channels: int) -> None:
    """Raise a ValueError unless ``resize >= image_size >= 1`` and ``channels`` is 1 or 3."""
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    if resize < image_size:
        raise ValueError(
            f"resize ({resize}) must be at least image_size ({image_size}): the shorter side is "
            f"resized to `resize` and the centre image_size x image_size crop is kept"
        )
    if channels not in CHANNELS:
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels}")


def decode(path: Path, channels: int) -> Image.Image:
    """The image at ``path`` as an RGB (3) or greyscale (1) PIL image, fully read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB" if channels == 3 else "L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataFormatError(
            f"{path}: not an image PIL can read ({err}); replace or remove the file"
        ) from err


def centre_crop(image: Image.Image, resize: int, image_size: int) -> np.ndarray:
    """Shorter side resized to ``resize`` (bilinear, antialiased), centre square of ``image_size``
    kept; H x W x C uint8. Sizes and offsets as torchvision's Resize and CenterCrop compute them:
    the longer side becomes ``int(resize * long / short)``, the crop starts at
    ``round((side - image_size) / 2)``."""
    w, h = image.size
    size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    if size != (w, h):
        image = image.resize(size, Image.Resampling.BILINEAR)
    left = int(round((size[0] - image_size) / 2.0))
    top = int(round((size[1] - image_size) / 2.0))
    cropped = image.crop((left, top, left + image_size, top + image_size))
    array = np.asarray(cropped, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def load_image_folder(
    root: str | os.PathLike[str],
    split: str,
    image_size: int,
    resize: int | None = None,
    channels: int = 3,
) -> ImageSet:
    """Every image of split ``train`` (``root/train``) or ``test`` (``root/val``), prepared."""
    return ImageFolder(root, split).load(image_size=image_size, resize=resize, channels=channels)
