"""Datasets by name: ``load_dataset("fashion_mnist", "train")``; dataset kinds by name."""

from __future__ import annotations

import os
from collections.abc import Callable

from robustlab.data.cifar import load_cifar10, load_cifar100
from robustlab.data.fashion_mnist import load_fashion_mnist
from robustlab.data.fetch import check_split
from robustlab.data.image_folder import ImageFolder
from robustlab.data.images import ImageSet
from robustlab.registry import Registry

#: ``load(split, source_dir, download) -> ImageSet``
Loader = Callable[[str, "str | os.PathLike[str] | None", bool], ImageSet]

DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.register("fashion_mnist")(load_fashion_mnist)
DATASETS.register("cifar10")(load_cifar10)
DATASETS.register("cifar100")(load_cifar100)

#: Kinds of dataset a user brings as a folder: ``kind(root, split)`` lists the split and its
#: ``load(indices, image_size=..., resize=..., channels=...)`` decodes it (image_folder.py).
DATASET_KINDS: Registry[type[ImageFolder]] = Registry("dataset kind")
DATASET_KINDS.register("image_folder")(ImageFolder)


def load_dataset(
    name: str, split: str, source_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """Load split ``train`` or ``test`` of the dataset registered as ``name``."""
    loader = DATASETS.get(name)
    check_split(split)
    return loader(split, source_dir, download)
