"""Weather corruptions of ImageNet-C: snow, frost, fog and brightness.

Grey images are treated as RGB images with three equal channels; where the result has colour
(frost) it is returned as its BT.601 luma.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from robustlab.noise.natural import ops
from robustlab.noise.natural._base import (
    channel_max,
    corruptions,
    groups,
    luma,
    normal32,
    spread,
    to_float,
    to_uint8,
)
from robustlab.noise.natural.tables import FROST_SCALE, Snow, param_for, resolution_class
from robustlab.noise.natural.textures import frost_bank, next_power_of_two, plasma_fractal


def snow_layer(rng: np.random.Generator, n: int, height: int, width: int, p: Snow) -> np.ndarray:
    """Falling-snow layers, N x H x W float in [0, 1], quantised to 1/255 like the reference.

    N(mean, std) noise, zoomed into its centre by ``zoom``, zeroed below ``threshold``, clipped,
    motion-blurred along U(-135, -45) degrees (the zoomed layer may be a pixel larger than the
    image; the blur sees it whole), rounded to 8 bits and cropped to the image.
    """
    layer = ops.zoom_planes(snow_noise(rng, n, height, width, p), p.zoom)
    layer[layer < p.threshold] = 0
    np.clip(layer, 0, 1, out=layer)
    angles = rng.uniform(-135, -45, size=n)
    blurred = ops.motion_blur(layer[..., None], angles, p.radius, p.sigma)
    quantised = blurred[:, :height, :width, 0] * 255
    np.round(quantised, out=quantised)
    quantised /= 255
    return quantised.astype(np.float32)


def snow_noise(rng: np.random.Generator, n: int, height: int, width: int, p: Snow) -> np.ndarray:
    """N x H x W float32 N(mean, std) noise of the snow layer, where the zoom reads it.

    The zoom reads only its centre crop (a quarter to a twentieth of the image), so a
    ``Generator`` draws just that block (the rest stays 0, never read); a legacy
    ``RandomState`` (replaying the references) draws the whole image in their order.
    """
    if not isinstance(rng, np.random.Generator):
        return normal32(rng, p.mean, p.std, (n, height, width))
    rows, cols = ops.zoom_support(height, p.zoom), ops.zoom_support(width, p.zoom)
    noise = np.zeros((n, height, width), np.float32)
    block = (n, rows.stop - rows.start, cols.stop - cols.start)
    noise[:, rows, cols] = normal32(rng, p.mean, p.std, block)
    return noise


def snow_on(images: np.ndarray, layer: np.ndarray, p: Snow) -> np.ndarray:
    """Blend images (uint8) towards their brightened grey, add the layer and its 180-degree turn."""
    if images.shape[-1] == 3:
        return np.stack([_snow_rgb(x, one, p.blend) for x, one in zip(images, layer, strict=True)])
    result = np.empty_like(images)
    for i in groups(images):  # group by group: the float temporaries stay in cache
        x = to_float(images[i])
        bright = luma(x) if x.shape[-1] == 3 else x.copy()
        bright *= np.float32(1.5)
        bright += np.float32(0.5)
        out = np.maximum(x, _like(bright, x.shape[-1]))
        out *= np.float32(1 - p.blend)
        x *= np.float32(p.blend)
        out += x
        flakes = layer[i] + layer[i][:, ::-1, ::-1]
        out += _like(flakes[..., None], x.shape[-1])
        result[i] = to_uint8(out)
    return result


def _snow_rgb(image: np.ndarray, layer: np.ndarray, blend: float) -> np.ndarray:
    """:func:`snow_on` of one uint8 RGB image on the 0-255 scale, with OpenCV's float luma
    (BT.601) and its rounding conversion to 8 bits (:data:`ops.TRUNCATE`)."""
    x = image.astype(np.float32)
    bright = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    bright *= np.float32(1.5)
    bright += np.float32(127.5)
    out = cv2.max(x, spread(bright[..., None]))
    out = cv2.addWeighted(x, blend, out, 1 - blend, 0.0)
    flakes = layer + layer[::-1, ::-1]
    flakes *= np.float32(255)
    out += spread(flakes[..., None])
    return cv2.convertScaleAbs(out, beta=ops.TRUNCATE)


def _like(plane: np.ndarray, channels: int) -> np.ndarray:
    """An H x W x 1 float32 plane repeated to ``channels`` channels (1 or 3)."""
    return plane if channels == 1 else spread(plane)


@corruptions.register("snow")
def snow(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Snow: motion-blurred flakes over a brightened, slightly greyed image."""
    p = param_for("snow", images, severity)
    n, h, w, _ = images.shape
    return snow_on(images, snow_layer(rng, n, h, w, p), p)


def frost_windows(rng: np.random.Generator, n: int, height: int, width: int) -> list[np.ndarray]:
    """N random height x width RGB crops (uint8 views) of the frost bank of this size class."""
    bank = frost_bank(FROST_SCALE[resolution_class(height, width)], height, width)
    choice = rng.integers(len(bank), size=n)
    crops = []
    for k in choice:
        texture = bank[k]
        top = int(rng.integers(texture.shape[0] - height))
        left = int(rng.integers(texture.shape[1] - width))
        crops.append(texture[top : top + height, left : left + width])
    return crops


@corruptions.register("frost")
def frost(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Frost: image_weight * x + frost_weight * a random crop of a frost texture (0-255 scale).

    RGB images blend with their crop in one OpenCV ``addWeighted`` each (float32 arithmetic,
    rounding y + GUARD - 1/2 to 8 bits: the references' truncation); grey images take the
    crop's luma.
    """
    image_weight, frost_weight = param_for("frost", images, severity)
    n, h, w, c = images.shape
    crops = frost_windows(rng, n, h, w)
    if c == 1:
        layer = luma(np.stack(crops).astype(np.float32))
        out = (
            np.float32(image_weight) * images.astype(np.float32) + np.float32(frost_weight) * layer
        )
        return to_uint8(out, scale=1.0)
    out = np.empty_like(images)
    for i, crop in enumerate(crops):
        cv2.addWeighted(images[i], image_weight, crop, frost_weight, ops.TRUNCATE, out[i])
    return out


def fog_on(images: np.ndarray, plasma: np.ndarray, strength: float) -> np.ndarray:
    """x + strength * plasma (N x H x W), rescaled by max(x) / (max(x) + strength) per image.

    float32, in place (the reference's float64 differs by float error only, within one grey
    level after truncation).
    """
    out = np.empty_like(images)
    for i in groups(images):  # group by group: the float temporaries stay in cache
        x = to_float(images[i])
        top = x.max(axis=(1, 2, 3), keepdims=True)
        layer = _like(plasma[i][..., None].copy(), x.shape[-1])
        layer *= np.float32(strength)
        x += layer
        x *= top / (top + np.float32(strength))
        out[i] = to_uint8(x)
    return out


@corruptions.register("fog")
def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fog: a plasma fractal (side: next power of two of the image) added, contrast reduced."""
    strength, decay = param_for("fog", images, severity)
    n, h, w, _ = images.shape
    plasma = plasma_fractal(rng, n, next_power_of_two(max(h, w)), decay)[:, :h, :w]
    return fog_on(images, plasma, strength)


@corruptions.register("brightness")
def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add c to the HSV value (clipped to 1), keeping hue and saturation; grey: x + c.

    HSV -> RGB is linear in V at fixed hue and saturation, so RGB is scaled by V' / V; black
    (V = 0, saturation 0) becomes grey V'. An output value depends on its input value and the
    pixel's V alone: it is read from a 256 x 256 table (V, value) computed in float32.
    """
    c = param_for("brightness", images, severity)
    table = brightness_table(float(c))
    v = channel_max(images)
    index = (spread(v) if images.shape[-1] == 3 else v).astype(np.uint16)
    index <<= 8
    index |= images
    return table.take(index)


@lru_cache(maxsize=16)
def brightness_table(c: float) -> np.ndarray:
    """Brightness output of value k in a pixel of HSV value V, at index 256 V + k (read-only)."""
    levels = to_float(np.arange(256, dtype=np.uint8))
    v, x = levels[:, None], levels[None, :]
    v_new = np.minimum(v + np.float32(c), np.float32(1))
    ratio = v_new / np.maximum(v, np.float32(1e-12))
    out = x * ratio  # black pixels: 0 * ratio = 0, then + v_new below
    out += (v == 0) * v_new
    table = to_uint8(out).ravel()
    table.setflags(write=False)
    return table
