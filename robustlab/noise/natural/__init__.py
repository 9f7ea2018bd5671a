"""Natural corruptions (ImageNet-C, CIFAR-10-C and MNIST-C style), batched over N x H x W x C uint8.

ImageNet-C's 15 corruptions, its 4 extras and MNIST-C's 4 affine corruptions, at severities 1-5,
with one parameter table per resolution class (:mod:`.tables`): 20-28 px (MNIST scale), 29-64 px
(CIFAR-10-C's values) and >= 224 px (ImageNet-C's values). ``apply_corruption(name, images,
severity, seed)`` is the entry point; docs/corruptions.md lists every parameter and every
deliberate difference from the reference scripts.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from robustlab.noise.natural import blur, digital, extra, geometric, noise, weather
from robustlab.noise.natural._base import (
    SEVERITIES,
    Corruption,
    check_images,
    check_severity,
    corruptions,
)
from robustlab.noise.natural.blur import defocus_blur, glass_blur, motion_blur, zoom_blur
from robustlab.noise.natural.digital import (
    contrast,
    elastic_transform,
    jpeg_compression,
    jpeg_roundtrip,
    pixelate,
)
from robustlab.noise.natural.extra import gaussian_blur, saturate, spatter, speckle_noise
from robustlab.noise.natural.geometric import rotate, scale, shear, translate
from robustlab.noise.natural.noise import gaussian_noise, impulse_noise, shot_noise
from robustlab.noise.natural.ops import disk_kernel
from robustlab.noise.natural.tables import CLASS_SIDES, TABLES, parameter, resolution_class
from robustlab.noise.natural.weather import brightness, fog, frost, snow

#: Corruption groups: ImageNet-C's four, RobustART's extras, MNIST-C's affine ones.
GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
    "geometric": ("shear", "rotate", "scale", "translate"),
}

#: ImageNet-C's 15 corruptions, in its order (the ones mCE averages over).
COMMON: tuple[str, ...] = GROUPS["noise"] + GROUPS["blur"] + GROUPS["weather"] + GROUPS["digital"]

#: Pixels per chunk in :func:`apply_corruption` (2048 images of 32 x 32); fixed per image size,
#: so results never depend on the machine's memory.
CHUNK_PIXELS = 2048 * 32 * 32


def corruption_names() -> list[str]:
    """Registered corruption names, sorted."""
    return corruptions.names()


def corruption_group(name: str) -> str:
    """The group (noise, blur, weather, digital, extra, geometric) of corruption ``name``."""
    get_corruption(name)
    return next(group for group, names in GROUPS.items() if name in names)


def get_corruption(name: str) -> Corruption:
    """The corruption called ``name``; an unknown name raises an error listing the known ones."""
    return corruptions.get(name)


def corruption_seed(seed: int, name: str, severity: int) -> int:
    """A stable 32-bit seed for (seed, corruption, severity), via CRC-32 (not Python's hash)."""
    return zlib.crc32(f"{seed}:{name}:{severity}".encode())


def chunk_size(height: int, width: int) -> int:
    """Images per chunk for ``height`` x ``width`` images in :func:`apply_corruption`."""
    return max(1, CHUNK_PIXELS // (height * width))


def corrupt_chunks(name: str, images: np.ndarray, severity: int, seed: int) -> Iterator[np.ndarray]:
    """Corrupted chunks of :func:`apply_corruption`, in order, for progress reporting.

    The arguments are checked before the first chunk; chunks of :func:`chunk_size` images share
    one generator seeded by ``seed``.
    """
    corrupt = get_corruption(name)
    check_images(images)
    check_severity(severity)
    parameter(name, severity, images.shape[1], images.shape[2])  # fail before any work
    return _chunks(corrupt, images, int(severity), np.random.default_rng(seed))


def _chunks(
    corrupt: Corruption, images: np.ndarray, severity: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    step = chunk_size(images.shape[1], images.shape[2])
    for start in range(0, len(images), step):
        yield corrupt(images[start : start + step], severity, rng)


def apply_corruption(name: str, images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` with a generator seeded by ``seed``.

    Deterministic: the same images, severity and seed give the same bytes. Images go through in
    chunks of :func:`chunk_size` (fixed per image size) that share one generator, to bound memory.
    """
    chunks = list(corrupt_chunks(name, images, severity, seed))
    return np.concatenate(chunks) if chunks else images.copy()


__all__ = [
    "CHUNK_PIXELS",
    "CLASS_SIDES",
    "COMMON",
    "GROUPS",
    "SEVERITIES",
    "TABLES",
    "Corruption",
    "apply_corruption",
    "blur",
    "brightness",
    "chunk_size",
    "contrast",
    "corrupt_chunks",
    "corruption_group",
    "corruption_names",
    "corruption_seed",
    "corruptions",
    "defocus_blur",
    "digital",
    "disk_kernel",
    "elastic_transform",
    "extra",
    "fog",
    "frost",
    "gaussian_blur",
    "gaussian_noise",
    "geometric",
    "get_corruption",
    "glass_blur",
    "impulse_noise",
    "jpeg_compression",
    "jpeg_roundtrip",
    "motion_blur",
    "noise",
    "parameter",
    "pixelate",
    "resolution_class",
    "rotate",
    "saturate",
    "scale",
    "shear",
    "shot_noise",
    "snow",
    "spatter",
    "speckle_noise",
    "translate",
    "weather",
    "zoom_blur",
]
