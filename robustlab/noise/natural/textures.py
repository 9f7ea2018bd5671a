"""Random fields and textures: the plasma fractal of fog and a procedural frost texture bank.

The frost bank replaces ImageNet-C's six frost photographs with six synthetic, seeded textures:
a cloudy low-frequency base (a plasma fractal) under thousands of bright fern-like ice crystals
(a stem with side branches at +-60 degrees, drawn anti-aliased), coloured so that each texture has
the mean and standard deviation per channel of the photograph it stands for (measured on the
photographs shipped with ``imagecorruptions``; docs/corruptions.md). The bank is fixed - generated
from a constant seed and cached - like the reference's files; the corruption's seed picks a
texture and a crop.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from robustlab.noise.natural._base import uniform32


def next_power_of_two(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def plasma_fractal(
    rng: np.random.Generator, n: int, size: int, decay: float, float32_draws: bool = True
) -> np.ndarray:
    """n diamond-square height maps of ``size`` x ``size`` (a power of two), each in [0, 1].

    Fog's field in ImageNet-C: midpoints get the mean of their 4 neighbours (wrapping around) plus
    U(-w, w) * w, with w = 100 at the coarsest step and w / decay at each finer one; the map is
    float32 and each level draws its noise in the order squares, then the two diamond sets.
    The draws are float32 (:func:`uniform32`) unless ``float32_draws`` is False (float64, as
    the fixed frost bank was made).
    """
    if size & (size - 1):
        raise ValueError(f"plasma size must be a power of two, got {size}")
    m = np.zeros((n, size, size), np.float32)
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares += np.roll(squares, -1, axis=2)
        m[:, half::step, half::step] = squares / 4 + _wobble(
            rng, wibble, squares.shape, float32_draws
        )
        centres, corners = m[:, half::step, half::step], m[:, 0::step, 0::step]
        across = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=2))
        m[:, 0::step, half::step] = across / 4 + _wobble(rng, wibble, across.shape, float32_draws)
        down = (centres + np.roll(centres, 1, axis=2)) + (corners + np.roll(corners, -1, axis=1))
        m[:, half::step, 0::step] = down / 4 + _wobble(rng, wibble, down.shape, float32_draws)
        step //= 2
        wibble /= decay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


def _wobble(
    rng: np.random.Generator, wibble: float, shape: tuple[int, ...], float32_draws: bool
) -> np.ndarray:
    """``wibble * U(-wibble, wibble)``: float32 draws, or float64 ones."""
    if not float32_draws:
        return wibble * rng.uniform(-wibble, wibble, shape)
    u = uniform32(rng, -wibble, wibble, shape)
    u *= np.float32(wibble)
    return u


class FrostStyle(NamedTuple):
    """Target look of one synthetic frost texture."""

    height: int
    width: int
    mean: tuple[float, float, float]  # RGB mean, 0-255
    std: tuple[float, float, float]  # RGB standard deviation
    crystals: float  # crystals per 1000 px^2
    length: float  # typical stem length, px
    base: float  # weight of the cloudy base (the rest: crystals)
    fine: float  # weight of fine crumpled-ice detail (sets the sharpness)


# One style per frost photograph of ImageNet-C (size, RGB mean and std at full size); the
# crystal density and size follow each photograph's look (fine crumpled ice for the first,
# large ferns for the fifth, ...).
FROST_STYLES: tuple[FrostStyle, ...] = (
    FrostStyle(600, 900, (77.7, 149.1, 165.7), (26.9, 16.5, 15.3), 2.0, 14, 0.7, 0.55),
    FrostStyle(315, 560, (200.8, 205.4, 214.5), (21.4, 22.1, 22.6), 1.6, 40, 0.35, 0.15),
    FrostStyle(315, 560, (200.8, 205.4, 214.5), (21.4, 22.1, 22.6), 1.6, 40, 0.35, 0.15),
    FrostStyle(350, 527, (137.6, 152.8, 165.2), (28.5, 28.5, 29.9), 1.2, 30, 0.5, 0.55),
    FrostStyle(495, 660, (112.4, 123.4, 134.8), (44.4, 43.3, 41.7), 1.3, 45, 0.3, 0.25),
    FrostStyle(323, 485, (71.4, 95.4, 104.5), (35.2, 42.7, 47.4), 1.0, 35, 0.5, 0.32),
)

FROST_SEED = 20190328  # fixed: the bank is part of the corruption's definition, like the files


def _crystals(rng: np.random.Generator, height: int, width: int, style: FrostStyle) -> np.ndarray:
    """Bright fern-like crystals on black, float32 in [0, 1].

    Each crystal is a stem plus side branches every max(2, length / 8) px at +-60 degrees, of
    0.45 times the remaining stem length and 0.8 times its brightness, drawn in that order.
    """
    canvas = np.zeros((height, width), np.uint8)
    count = int(style.crystals * height * width / 1000)
    starts = rng.uniform((0, 0), (width, height), size=(count, 2))
    angles = rng.uniform(0, 2 * np.pi, size=count)
    lengths = style.length * rng.lognormal(0.0, 0.5, size=count)
    levels = rng.uniform(90, 255, size=count)
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    spacing = np.maximum(2.0, lengths / 8)
    t = spacing[:, None] * np.arange(1, 9)[None, :]  # at most 8 branch points per stem
    roots = starts[:, None, :] + t[..., None] * direction[:, None, :]
    side = (lengths[:, None] - t) * 0.45
    segments = [np.concatenate([starts, starts + lengths[:, None] * direction], axis=1)[:, None]]
    branches = []
    for turn in (np.pi / 3, -np.pi / 3):
        tip_dir = np.stack([np.cos(angles + turn), np.sin(angles + turn)], axis=1)
        tips = roots + side[..., None] * tip_dir[:, None, :]
        branches.append(np.concatenate([roots, tips], axis=2))
    # per stem: the stem, then for each branch point the +60 and the -60 degree branch
    segments.append(np.stack(branches, axis=2).reshape(count, -1, 4))
    ends = np.rint(np.concatenate(segments, axis=1)).astype(int)
    keep = np.concatenate(
        [np.ones((count, 1), bool), np.repeat(t < lengths[:, None], 2, axis=1)], 1
    )
    values = np.concatenate(
        [
            levels.astype(int)[:, None],
            np.repeat((levels.astype(int) * 0.8).astype(int)[:, None], 16, 1),
        ],
        axis=1,
    )
    for x0, y0, x1, y1, value in np.column_stack([ends[keep], values[keep]]).tolist():
        cv2.line(canvas, (x0, y0), (x1, y1), value, 1, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


@lru_cache(maxsize=8)
def frost_texture(index: int) -> np.ndarray:
    """Synthetic frost texture ``index`` (0-5) at full size, uint8 H x W x 3 RGB (read-only)."""
    style = FROST_STYLES[index]
    rng = np.random.default_rng([FROST_SEED, index])
    h, w = style.height, style.width
    size = next_power_of_two(max(h, w))
    base = plasma_fractal(rng, 1, size, 1.6, float32_draws=False)[0, :h, :w]
    crystals = cv2.GaussianBlur(_crystals(rng, h, w, style), (0, 0), 0.6)
    fine = np.abs(cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.8))
    field = style.base * _standardise(base) + (1 - style.base) * _standardise(crystals)
    field = _standardise(_standardise(field) + style.fine * _standardise(fine))
    tint = _standardise(cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 8))
    rgb = np.empty((h, w, 3), np.float32)
    for k in range(3):
        mixed = _standardise(field + 0.05 * (k - 1) * tint)
        rgb[..., k] = style.mean[k] + style.std[k] * mixed
    out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def _standardise(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / max(float(a.std()), 1e-12)


@lru_cache(maxsize=64)
def frost_bank(scale: float, height: int, width: int) -> tuple[np.ndarray, ...]:
    """The six textures resized by ``scale``, each enlarged if needed to exceed the image size.

    Following the references: CIFAR-10-C shrinks the photographs to ``scale`` = 0.2, ImageNet-C
    uses them as they are; a texture not larger than the image in both sides is scaled up to
    1.1 times the size needed (as ``imagecorruptions`` does).
    """
    bank = []
    for index in range(len(FROST_STYLES)):
        texture = frost_texture(index)
        if scale != 1.0:
            texture = cv2.resize(
                texture, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR
            )
        th, tw = texture.shape[:2]
        if th <= height or tw <= width:
            grow = 1.1 * max((height + 1) / th, (width + 1) / tw, 1.0)
            size = (int(np.ceil(tw * grow)), int(np.ceil(th * grow)))
            texture = cv2.resize(texture, size, interpolation=cv2.INTER_CUBIC)
        texture = np.ascontiguousarray(texture)
        texture.setflags(write=False)
        bank.append(texture)
    return tuple(bank)
