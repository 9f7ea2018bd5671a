"""Natural corruptions (ImageNet-C / CIFAR-10-C style), batched over N x H x W x C uint8 images.

Every corruption has one signature, ``corrupt(images, severity, rng) -> images``: ``images`` is
uint8 N x H x W x C with C = 1 (grey) or 3 (RGB), ``severity`` an int in 1..5, ``rng`` a NumPy
generator; the result is uint8 of the same shape.

Parameter tables, chosen by :func:`resolution_class` from the image size:

- ``"small"`` (both sides <= 64 px; used for 28 px Fashion-MNIST and 32 px CIFAR): the values of
  Hendrycks & Dietterich's ``make_cifar_c.py`` (CIFAR-10-C), tuned for 32 px images.
- ``"large"`` (both sides >= 224 px): the values of ``make_imagenet_c.py`` (ImageNet-C).
- Sizes in between have no validated table and raise an error.

Arithmetic follows the reference scripts: images go to float64 in [0, 1], the corruption is applied,
the result is clipped to [0, 1], multiplied by 255 and *truncated* to uint8 (the references'
``np.uint8(...)``), with a 1e-6 guard added before truncation so float error such as
``k / 255 * 255 = k - 1e-13`` does not drop a grey level. JPEG and pixelate go through PIL and
return its uint8 output directly.

Deliberate differences from the reference scripts (same definitions, other implementation):
defocus convolves each channel plane with ``torch`` instead of ``cv2.filter2D`` (same mirror
border as OpenCV's default) and renormalises the kernel to sum 1; brightness scales RGB by the
new/old HSV value instead of an explicit RGB -> HSV -> RGB round trip (mathematically the same
map); impulse noise draws its salt-and-pepper mask from ``rng`` like
``skimage.util.random_noise(mode="s&p")`` (per element, salt:pepper 1:1).
Contrast takes the mean per image *and channel* over H and W, as both reference scripts do
(``np.mean(x, axis=(0, 1))`` on an H x W x C image).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustlab.registry import Registry

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

corruptions: Registry[Corruption] = Registry("corruption")

SEVERITIES = (1, 2, 3, 4, 5)

# One entry per severity 1..5. Sources: "small" = make_cifar_c.py (CIFAR-10-C), "large" =
# make_imagenet_c.py (ImageNet-C), both from github.com/hendrycks/robustness.
TABLES: dict[str, dict[str, tuple[Any, ...]]] = {
    "small": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # sigma
        "shot_noise": (500, 250, 100, 75, 50),  # Poisson photons per unit intensity
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper amount
        "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # radius, alias
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # downscale factor
        "jpeg_compression": (80, 65, 58, 50, 40),  # quality
    },
    "large": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot_noise": (60, 25, 12, 5, 3),
        "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
        "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
        "jpeg_compression": (25, 18, 15, 10, 7),
    },
}

SMALL_MAX = 64
LARGE_MIN = 224
_GUARD = 1e-6
_CHUNK = 2048  # images per batch in apply_corruption; fixed, so results do not depend on memory


def resolution_class(height: int, width: int) -> str:
    """``"small"`` for images with both sides <= 64 px, ``"large"`` for both sides >= 224 px."""
    if max(height, width) <= SMALL_MAX:
        return "small"
    if min(height, width) >= LARGE_MIN:
        return "large"
    raise ValueError(
        f"no corruption parameter table for {height}x{width} images: tables exist for sides "
        f"<= {SMALL_MAX} px (CIFAR-10-C) and >= {LARGE_MIN} px (ImageNet-C); resize the images "
        "or add a table in robustlab/noise/natural.py"
    )


def parameter(name: str, severity: int, height: int, width: int) -> Any:
    """The table value of corruption ``name`` at ``severity`` for ``height`` x ``width`` images."""
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer):
        raise ValueError(f"severity must be an integer 1-5, got {severity!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be in 1-5, got {severity}")
    return TABLES[resolution_class(height, width)][name][int(severity) - 1]


def _check(images: np.ndarray) -> None:
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be uint8 N x H x W x C with C = 1 or 3, got {images.dtype} {images.shape}"
        )


def _param(name: str, images: np.ndarray, severity: int) -> Any:
    _check(images)
    return parameter(name, severity, images.shape[1], images.shape[2])


def _to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], scale by 255, truncate (as ImageNet-C's ``np.uint8``) with a 1e-6 guard."""
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + _GUARD).astype(np.uint8)


@corruptions.register("gaussian_noise")
def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise: x + N(0, sigma^2), sigma in [0, 1] intensity units."""
    sigma = _param("gaussian_noise", images, severity)
    x = _to_float(images)
    return _to_uint8(x + rng.normal(scale=sigma, size=x.shape))


@corruptions.register("shot_noise")
def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise: Poisson(x * c) / c."""
    c = _param("shot_noise", images, severity)
    return _to_uint8(rng.poisson(_to_float(images) * c) / c)


@corruptions.register("impulse_noise")
def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: each value becomes 1 with probability a/2 and 0 with a/2."""
    amount = _param("impulse_noise", images, severity)
    x = _to_float(images)
    u = rng.random(x.shape)
    x[u < amount / 2] = 1.0
    x[(u >= amount / 2) & (u < amount)] = 0.0
    return _to_uint8(x)


def _gaussian_kernel_1d(ksize: int, sigma: float) -> np.ndarray:
    i = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(i**2) / (2 * sigma**2))
    return g / g.sum()


def _reflect_correlate_1d(a: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``a`` with ``g`` along ``axis``, mirror padding without edge repeat."""
    r = len(g) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    p = np.pad(a, pad, mode="reflect")
    n = a.shape[axis]
    return sum(w * np.take(p, range(k, k + n), axis=axis) for k, w in enumerate(g))


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """ImageNet-C's anti-aliased disk: a normalised disk of ``radius`` blurred by a Gaussian.

    Support is 17 x 17 for radius <= 8 (3 x 3 Gaussian), else (2 radius + 1)^2 (5 x 5 Gaussian),
    as in the reference; the result is renormalised to sum 1.
    """
    if radius <= 8:
        half, ksize = 8, 3
    else:
        half, ksize = int(radius), 5
    coords = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = _gaussian_kernel_1d(ksize, alias_blur)
    kernel = _reflect_correlate_1d(_reflect_correlate_1d(disk, g, 0), g, 1)
    return kernel / kernel.sum()


def _defocus_float(x: np.ndarray, radius: float, alias_blur: float) -> np.ndarray:
    """Convolve float N x H x W x C images per channel with the disk kernel (mirror padding)."""
    kernel = disk_kernel(radius, alias_blur)
    support = np.nonzero(kernel.any(axis=1))[0]  # drop all-zero borders: same result, less work
    kernel = kernel[support[0] : support[-1] + 1, support[0] : support[-1] + 1]
    r = kernel.shape[0] // 2
    n, h, w, c = x.shape
    planes = x.transpose(0, 3, 1, 2).reshape(n * c, 1, h, w)
    planes = np.pad(planes, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    weight = torch.from_numpy(np.ascontiguousarray(kernel[None, None]))
    out = F.conv2d(torch.from_numpy(np.ascontiguousarray(planes)), weight).numpy()
    return out.reshape(n, c, h, w).transpose(0, 2, 3, 1)


@corruptions.register("defocus_blur")
def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Defocus: per-channel convolution with an anti-aliased disk (radius, alias sigma)."""
    radius, alias_blur = _param("defocus_blur", images, severity)
    return _to_uint8(_defocus_float(_to_float(images), radius, alias_blur))


@corruptions.register("brightness")
def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add c to the HSV value (clipped to 1), keeping hue and saturation; grey: x + c."""
    c = _param("brightness", images, severity)
    x = _to_float(images)
    v = x.max(axis=-1, keepdims=True)
    v_new = np.minimum(v + c, 1.0)
    # HSV -> RGB is linear in V at fixed hue and saturation; V = 0 means black, which becomes grey.
    scaled = np.where(v > 0, x * (v_new / np.where(v > 0, v, 1.0)), v_new)
    return _to_uint8(scaled)


@corruptions.register("contrast")
def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """(x - mean) * c + mean, the mean taken per image and channel over H and W (as ImageNet-C)."""
    c = _param("contrast", images, severity)
    x = _to_float(images)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _to_uint8((x - mean) * c + mean)


def _pil(image: np.ndarray) -> Image.Image:
    """H x W x C uint8 -> PIL image, mode "L" for C = 1 and "RGB" for C = 3."""
    return Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[-1] == 1 else image))


def _from_pil(image: Image.Image, channels: int) -> np.ndarray:
    a = np.asarray(image, dtype=np.uint8)
    return a[..., None] if channels == 1 else a


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one H x W x C uint8 image as JPEG at ``quality`` with PIL's defaults, decode back."""
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return _from_pil(decoded, image.shape[-1])


@corruptions.register("jpeg_compression")
def jpeg_compression(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG encode/decode through PIL at the table's quality (grey images as mode "L")."""
    quality = _param("jpeg_compression", images, severity)
    return np.stack([jpeg_roundtrip(image, quality) for image in images])


@corruptions.register("pixelate")
def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downscale by the table's factor (int of size x factor), box-upscale back (PIL)."""
    factor = _param("pixelate", images, severity)
    _, h, w, c = images.shape
    small = (max(1, int(w * factor)), max(1, int(h * factor)))
    box = Image.Resampling.BOX
    return np.stack(
        [_from_pil(_pil(im).resize(small, box).resize((w, h), box), c) for im in images]
    )


def corruption_names() -> list[str]:
    """Registered corruption names, sorted."""
    return corruptions.names()


def get_corruption(name: str) -> Corruption:
    """The corruption called ``name``; an unknown name raises an error listing the known ones."""
    return corruptions.get(name)


def corruption_seed(seed: int, name: str, severity: int) -> int:
    """A stable 32-bit seed for (seed, corruption, severity), via CRC-32 (not Python's hash)."""
    return zlib.crc32(f"{seed}:{name}:{severity}".encode())


def apply_corruption(name: str, images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` with a generator seeded by ``seed``.

    Deterministic: the same images, severity and seed give the same bytes. Images are processed in
    fixed chunks of 2048 sharing one generator, to bound memory.
    """
    corrupt = get_corruption(name)
    _check(images)
    parameter(name, severity, images.shape[1], images.shape[2])  # fail before any work
    rng = np.random.default_rng(seed)
    if len(images) == 0:
        return images.copy()
    chunks = [corrupt(images[i : i + _CHUNK], severity, rng) for i in range(0, len(images), _CHUNK)]
    return np.concatenate(chunks)
