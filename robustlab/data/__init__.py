"""Datasets: official sources and image folders, the shared image-table format, subsets."""

from robustlab.data.image_folder import ImageFolder, load_image_folder
from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.data.registry import DATASET_KINDS, DATASETS, load_dataset
from robustlab.data.subset import stratified_subset

__all__ = [
    "DATASETS",
    "DATASET_KINDS",
    "ImageFolder",
    "ImageSet",
    "load_image_folder",
    "load_dataset",
    "read_images",
    "stratified_subset",
    "write_images",
]
