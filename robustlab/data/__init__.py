"""Datasets: readers of the official sources, the shared image-table format, subsets."""

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.data.registry import DATASETS, load_dataset
from robustlab.data.subset import stratified_subset

__all__ = [
    "DATASETS",
    "ImageSet",
    "load_dataset",
    "read_images",
    "stratified_subset",
    "write_images",
]
