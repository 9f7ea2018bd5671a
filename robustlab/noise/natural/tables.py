"""Parameter tables, one per resolution class, and the class of an image size.

- ``"tiny"`` (both sides 20-28 px; Fashion-MNIST, MNIST): MNIST-C's values where they exist,
  the rest tuned on Fashion-MNIST (docs/corruptions.md says how).
- ``"small"`` (both sides 29-64 px; CIFAR, SVHN, Tiny ImageNet): ``make_cifar_c.py``
  (CIFAR-10-C) of Hendrycks & Dietterich.
- ``"large"`` (both sides >= 224 px; ImageNet): ``make_imagenet_c.py`` (ImageNet-C).

Pixel-valued parameters (blur radii, displacements) are used as they are at every size of a class.
Other sizes raise an error: resize the images or add a class here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from robustlab.noise.natural._base import check_images, check_severity


class Defocus(NamedTuple):
    radius: float  # disk radius, px
    alias_blur: float  # sigma of the Gaussian that anti-aliases the disk


class Glass(NamedTuple):
    sigma: float  # Gaussian blur before and after the shuffle, px
    max_delta: int  # pixels move by -max_delta .. max_delta - 1 in x and y
    iterations: int


class Motion(NamedTuple):
    radius: int  # the kernel has 2 radius + 1 taps along the motion
    sigma: float  # one-sided Gaussian weight of the taps


class Zoom(NamedTuple):
    stop: float  # zoom factors np.arange(1, stop, step)
    step: float


class Snow(NamedTuple):
    mean: float  # snow layer ~ N(mean, std), zoomed by `zoom`, zeroed below `threshold`
    std: float
    zoom: float
    threshold: float
    radius: int  # motion blur of the flakes (radius, sigma), angle U(-135, -45)
    sigma: float
    blend: float  # weight of the image against its brightened grey version


class Frost(NamedTuple):
    image_weight: float  # out = image_weight * x + frost_weight * texture (0-255 scale)
    frost_weight: float


class Fog(NamedTuple):
    strength: float  # x + strength * plasma, then rescaled by max / (max + strength)
    decay: float  # plasma fractal's wibble decay: lower is rougher


class Elastic(NamedTuple):
    alpha: float  # displacement magnitude, px
    sigma: float  # smoothing of the displacement field, px
    affine: float  # random affine: the 3 reference points move by U(-affine, affine) px


class Spatter(NamedTuple):
    mean: float  # liquid layer ~ N(mean, std), blurred by sigma, zeroed below threshold
    std: float
    sigma: float
    threshold: float
    intensity: float  # water: scale of the drops; mud: sigma of the mud mask blur
    mud: int  # 0 water (pale turquoise drops), 1 mud (brown blots)


class Saturate(NamedTuple):
    scale: float  # HSV saturation s -> clip(s * scale + shift, 0, 1)
    shift: float


IMAGENET_SIDE = 244  # make_imagenet_c.py's elastic constants use 244 (a typo for 224, kept)
CIFAR_SIDE = 32
MNIST_SIDE = 28


def _elastic(side: float, *rows: tuple[float, float, float]) -> tuple[Elastic, ...]:
    return tuple(Elastic(side * a, side * s, side * f) for a, s, f in rows)


# MNIST-C's geometric corruptions (Mu & Gilmer 2019), the same at every size except translate,
# which is in pixels and scales with the side (MNIST-C: 1-5 px at 28 px).
_SHEAR = (0.2, 0.4, 0.6, 0.8, 1.0)  # shear angle, radians, random sign
_ROTATE = (0.2, 0.4, 0.6, 0.8, 1.0)  # rotation, radians, random sign
_SCALE = (1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5)  # inverse-map scale: content shrinks

LARGE: dict[str, tuple[Any, ...]] = {
    # noise
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # sigma
    "shot_noise": (60, 25, 12, 5, 3),  # photons per unit intensity
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # salt-and-pepper amount
    # blur
    "defocus_blur": tuple(Defocus(*p) for p in ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))),
    "glass_blur": tuple(
        Glass(*p) for p in ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
    ),
    "motion_blur": tuple(Motion(*p) for p in ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))),
    "zoom_blur": tuple(
        Zoom(*p) for p in ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))
    ),
    # weather
    "snow": tuple(
        Snow(*p)
        for p in (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        )
    ),
    "frost": tuple(Frost(*p) for p in ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))),
    "fog": tuple(Fog(*p) for p in ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to the HSV value
    # digital
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # factor on the deviation from the mean
    "elastic_transform": _elastic(
        IMAGENET_SIDE,
        (2, 0.7, 0.1),
        (2, 0.08, 0.2),
        (0.05, 0.01, 0.02),
        (0.07, 0.01, 0.02),
        (0.12, 0.01, 0.02),
    ),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),  # box-downscale factor
    "jpeg_compression": (25, 18, 15, 10, 7),  # quality
    # extra
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),  # sigma of the multiplicative noise
    "gaussian_blur": (1, 2, 3, 4, 6),  # sigma, px
    "spatter": tuple(
        Spatter(*p)
        for p in (
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        )
    ),
    "saturate": tuple(Saturate(*p) for p in ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))),
    # geometric (MNIST-C)
    "shear": _SHEAR,
    "rotate": _ROTATE,
    "scale": _SCALE,
    "translate": (8, 16, 24, 32, 40),  # px, MNIST-C's 1-5 px x 224 / 28
}

SMALL: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": tuple(
        Defocus(*p) for p in ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
    ),
    "glass_blur": tuple(
        Glass(*p) for p in ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
    ),
    "motion_blur": tuple(Motion(*p) for p in ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    "zoom_blur": tuple(
        Zoom(*p) for p in ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01))
    ),
    "snow": tuple(
        Snow(*p)
        for p in (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        )
    ),
    "frost": tuple(Frost(*p) for p in ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))),
    "fog": tuple(Fog(*p) for p in ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": _elastic(
        CIFAR_SIDE,
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "spatter": tuple(
        Spatter(*p)
        for p in (
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        )
    ),
    "saturate": tuple(Saturate(*p) for p in ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))),
    "shear": _SHEAR,
    "rotate": _ROTATE,
    "scale": _SCALE,
    "translate": (1, 2, 3, 5, 6),  # px, MNIST-C's 1-5 px x 32 / 28, rounded
}

# 28 px grey images (docs/corruptions.md, "The tiny table"). Severity 5 of the corruptions
# MNIST-C keeps (shot, impulse, glass, motion, fog, spatter, brightness) is MNIST-C's chosen
# value, the affine ladders are MNIST-C's own; the rest start from CIFAR-10-C's or ImageNet-C's
# ladder and were tuned on Fashion-MNIST so that severity 5 is hard but recognisable.
TINY: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.13, 0.17),
    "defocus_blur": tuple(
        Defocus(*p) for p in ((0.5, 0.6), (1, 0.2), (1.5, 0.1), (2, 0.1), (3, 0.1))
    ),
    "glass_blur": tuple(
        Glass(*p) for p in ((0.4, 1, 1), (0.6, 1, 1), (0.4, 1, 2), (0.6, 1, 2), (0.7, 1, 2))
    ),
    "motion_blur": tuple(Motion(*p) for p in ((6, 1), (6, 1.5), (8, 2), (9, 2.5), (10, 3))),
    "zoom_blur": tuple(
        Zoom(*p) for p in ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.26, 0.02), (1.31, 0.03))
    ),
    "snow": tuple(
        Snow(*p)
        for p in (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
            (0.35, 0.3, 1.5, 0.6, 14, 12, 0.75),
        )
    ),
    "frost": SMALL["frost"],
    "fog": tuple(Fog(*p) for p in ((0.2, 3), (0.5, 3), (1, 2.5), (2, 2), (3, 1.4))),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # Simard et al.'s MNIST elastic distortion scale (sigma 4 px), ImageNet-C's small affine part
    "elastic_transform": tuple(
        Elastic(alpha, 4.0, MNIST_SIDE * f)
        for alpha, f in ((16, 0.02), (24, 0.03), (32, 0.04), (40, 0.05), (48, 0.06))
    ),
    "pixelate": (0.8, 0.65, 0.5, 0.4, 0.3),
    "jpeg_compression": (30, 15, 8, 4, 1),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    "gaussian_blur": (0.6, 0.8, 1, 1.5, 2),
    "spatter": tuple(
        Spatter(*p)
        for p in (
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.2, 1, 0.68, 1.0, 1),
            (0.65, 0.3, 1, 0.68, 1.2, 1),
            (0.65, 0.3, 1, 0.66, 1.5, 1),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
        )
    ),
    "saturate": tuple(Saturate(*p) for p in ((1, 0.2), (1, 0.4), (1, 0.6), (1, 0.8), (1, 1.0))),
    "shear": _SHEAR,
    "rotate": _ROTATE,
    "scale": _SCALE,
    "translate": (1, 2, 3, 4, 5),
}

TABLES: dict[str, dict[str, tuple[Any, ...]]] = {"tiny": TINY, "small": SMALL, "large": LARGE}

#: Inclusive side ranges (min, max) of each class; ``None``: no upper bound.
CLASS_SIDES: dict[str, tuple[int, int | None]] = {
    "tiny": (20, 28),
    "small": (29, 64),
    "large": (224, None),
}

#: Texture scale of frost per class: CIFAR-10-C shrinks the frost photographs to 0.2 before
#: cropping, ImageNet-C crops them at full size.
FROST_SCALE: dict[str, float] = {"tiny": 0.2, "small": 0.2, "large": 1.0}


def _describe_classes() -> str:
    parts = []
    for name, (lo, hi) in CLASS_SIDES.items():
        parts.append(f"{name} {lo}-{hi} px" if hi is not None else f"{name} >= {lo} px")
    return ", ".join(parts)


def resolution_class(height: int, width: int) -> str:
    """The table class of ``height`` x ``width`` images (both sides must lie in its range)."""
    for name, (lo, hi) in CLASS_SIDES.items():
        if all(lo <= side and (hi is None or side <= hi) for side in (height, width)):
            return name
    raise ValueError(
        f"no corruption parameter table for {height}x{width} images: tables exist for "
        f"{_describe_classes()} (both sides); resize or crop the images, or add a class in "
        "robustlab/noise/natural/tables.py"
    )


def parameter(name: str, severity: int, height: int, width: int) -> Any:
    """The table value of corruption ``name`` at ``severity`` for ``height`` x ``width`` images."""
    severity = check_severity(severity)
    table = TABLES[resolution_class(height, width)]
    if name not in table:
        raise ValueError(f"no table entry for corruption {name!r}; known: {', '.join(table)}")
    return table[name][severity - 1]


def param_for(name: str, images: np.ndarray, severity: int) -> Any:
    """Check ``images`` (uint8 N x H x W x C, C = 1 or 3) and look up ``name`` at ``severity``."""
    check_images(images)
    return parameter(name, severity, images.shape[1], images.shape[2])
