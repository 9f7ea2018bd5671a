"""Perturbation sequences for flip-probability (ImageNet-P style) evaluation.

``perturbation_sequence(name, images, length, seed)`` turns uint8 N x H x W x C images (grey or
RGB) into uint8 N x L x H x W x C sequences; ``perturbation_names()`` lists the registry.
"""

from robustlab.noise.stability.sequences import (
    Perturbation,
    get_perturbation,
    image_generator,
    is_noise_perturbation,
    perturbation_names,
    perturbation_schedule,
    perturbation_sequence,
    perturbations,
)
from robustlab.noise.stability.tables import TABLE, size_class

__all__ = [
    "TABLE",
    "Perturbation",
    "get_perturbation",
    "image_generator",
    "is_noise_perturbation",
    "perturbation_names",
    "perturbation_schedule",
    "perturbation_sequence",
    "perturbations",
    "size_class",
]
