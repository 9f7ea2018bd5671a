"""The corruption registry, input checks and the float <-> uint8 conventions shared by all groups.

Every corruption has one signature, ``corrupt(images, severity, rng) -> images``: ``images`` is
uint8 N x H x W x C with C = 1 (grey) or 3 (RGB), ``severity`` an int in 1..5, ``rng`` a NumPy
generator; the result is uint8 of the same shape. Corruptions work in float32 on [0, 1] (or
[0, 255] where the reference does) and end with :func:`to_uint8`.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from robustlab.registry import Registry

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

corruptions: Registry[Corruption] = Registry("corruption")

SEVERITIES = (1, 2, 3, 4, 5)

#: Added (in grey levels) before truncating to uint8, so float error such as
#: ``k / 255 * 255 = k - 3e-5`` in float32 does not drop a grey level.
GUARD = 2e-4

#: ITU-R BT.601 luma weights (OpenCV's RGB2GRAY, PIL's "L"): grey images take the luma of
#: colour corruptions computed on their three-channel copy.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def check_images(images: np.ndarray) -> None:
    """Raise unless ``images`` is uint8 N x H x W x C with C = 1 or 3."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"images must be a NumPy array, got {type(images).__name__}")
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be uint8 N x H x W x C with C = 1 or 3, got {images.dtype} {images.shape}"
        )


def check_severity(severity: object) -> int:
    """``severity`` as an int, or an error unless it is an integer 1-5."""
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer):
        raise ValueError(f"severity must be an integer 1-5, got {severity!r}")
    if int(severity) not in SEVERITIES:
        raise ValueError(f"severity must be in 1-5, got {severity}")
    return int(severity)


def uniform32(
    rng: np.random.Generator, low: float, high: float, size: tuple[int, ...]
) -> np.ndarray:
    """U(low, high) float32 draws: float32 straight from a ``Generator`` (half the work), the
    float64 draws cast to float32 from a legacy ``RandomState`` (to replay references)."""
    if not isinstance(rng, np.random.Generator):
        return rng.uniform(low, high, size=size).astype(np.float32)
    u = rng.random(size, dtype=np.float32)
    u *= np.float32(high - low)
    u += np.float32(low)
    return u


def normal32(
    rng: np.random.Generator, mean: float, std: float, size: tuple[int, ...]
) -> np.ndarray:
    """N(mean, std^2) float32 draws, like :func:`uniform32` (float32 from a ``Generator``)."""
    if not isinstance(rng, np.random.Generator):
        return rng.normal(mean, std, size=size).astype(np.float32)
    z = rng.standard_normal(size, dtype=np.float32)
    z *= np.float32(std)
    z += np.float32(mean)
    return z


def _raw_ready(rng: np.random.Generator, count: int, per: int) -> bool:
    """Whether ``count`` draws of ``per`` per 64-bit output can be read from ``rng``'s raw
    outputs: a PCG64 ``Generator`` with no 32-bit half buffered and whole 64-bit outputs."""
    bitgen = getattr(rng, "bit_generator", None)
    return (
        isinstance(rng, np.random.Generator)
        and type(bitgen) is np.random.PCG64
        and count % per == 0
        and not bitgen.state["has_uint32"]
    )


def uniform_bits(rng: np.random.Generator, size: tuple[int, ...], dtype: type) -> np.ndarray:
    """``rng.integers(0, 2^bits, size, dtype)`` for ``dtype`` uint16 or uint32: the same numbers.

    A PCG64 generator gives those as its 64-bit outputs split into 32-bit halves (low first),
    and 32-bit halves into 16-bit ones; where :func:`_raw_ready` they are read straight from
    :meth:`~numpy.random.BitGenerator.random_raw` (a third faster), else ``integers`` draws them.
    """
    bits = np.dtype(dtype).itemsize * 8
    count, per = int(np.prod(size)), 64 // bits
    if _raw_ready(rng, count, per):
        return rng.bit_generator.random_raw(count // per).view(dtype).reshape(size)
    return rng.integers(0, 1 << bits, size=size, dtype=dtype)


def small_integers(rng: np.random.Generator, high: int, size: tuple[int, ...]) -> np.ndarray:
    """``rng.integers(0, high, size, dtype=np.uint8)`` (high <= 256): the same numbers.

    For high a power of two below 256, NumPy's bounded draw (Lemire's, on the bytes of 32-bit
    halves, low byte first) never rejects and returns each byte's top log2(high) bits; where
    :func:`_raw_ready` those bytes are read straight from the raw outputs (several times faster).
    """
    count = int(np.prod(size))
    shift = 8 - (high.bit_length() - 1)
    if high < 256 and high & (high - 1) == 0 and _raw_ready(rng, count, 8):
        raw = rng.bit_generator.random_raw(count // 8).view(np.uint8)
        return np.right_shift(raw, shift, out=raw).reshape(size)
    return rng.integers(0, high, size=size, dtype=np.uint8)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]."""
    return images.astype(np.float32) * np.float32(1 / 255)


def to_uint8(x: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """Clip to [0, 1] (``scale=1``: to [0, 255]), scale and truncate like the references.

    The references end with ``np.uint8(np.clip(x, 0, 1) * 255)``, which truncates; so does this,
    after adding :data:`GUARD`.
    """
    y = x * np.asarray(scale, x.dtype)
    y += np.asarray(GUARD, x.dtype)
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8)


def channel_max(x: np.ndarray) -> np.ndarray:
    """Max over the channel axis, keeping it (elementwise: far faster than a size-3 reduction)."""
    return (
        x[..., :1]
        if x.shape[-1] == 1
        else np.maximum(np.maximum(x[..., :1], x[..., 1:2]), x[..., 2:])
    )


def channel_min(x: np.ndarray) -> np.ndarray:
    """Min over the channel axis, keeping it."""
    return (
        x[..., :1]
        if x.shape[-1] == 1
        else np.minimum(np.minimum(x[..., :1], x[..., 1:2]), x[..., 2:])
    )


#: Values per group when a corruption goes through a batch group by group, so that a group's
#: float temporaries stay in cache (one image at 224 px, 14 at 32 px).
GROUP_VALUES = 1 << 17


def groups(images: np.ndarray) -> list[slice]:
    """Slices of the batch in groups of about :data:`GROUP_VALUES` values (at least 1 image)."""
    per = max(1, GROUP_VALUES // max(1, images[0].size if len(images) else 1))
    return [slice(a, a + per) for a in range(0, len(images), per)]


def spread(x: np.ndarray) -> np.ndarray:
    """Repeat the last axis (size 1) of a uint8 or float32 array three times.

    OpenCV's grey-to-RGB copy: NumPy's broadcasting over a last axis of 3 is slow.
    """
    flat = np.ascontiguousarray(x).reshape(-1, x.shape[-2])
    return cv2.cvtColor(flat, cv2.COLOR_GRAY2RGB).reshape(*x.shape[:-1], 3)


def luma(rgb: np.ndarray) -> np.ndarray:
    """N x H x W x 3 float -> N x H x W x 1 BT.601 luma."""
    w = LUMA.astype(rgb.dtype)
    return rgb[..., :1] * w[0] + rgb[..., 1:2] * w[1] + rgb[..., 2:] * w[2]


def as_rgb(x: np.ndarray) -> np.ndarray:
    """Repeat a one-channel float batch to three channels; three-channel input is returned."""
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def like_input(rgb: np.ndarray, channels: int) -> np.ndarray:
    """Back to the input's channel count: the luma for grey input, else unchanged."""
    return luma(rgb) if channels == 1 else rgb
