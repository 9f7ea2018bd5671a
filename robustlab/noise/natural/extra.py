"""ImageNet-C's four extra (validation) corruptions: speckle noise, Gaussian blur, spatter and
saturate. Grey images are treated as three equal channels and return the luma of colour results.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from robustlab.noise.natural import ops
from robustlab.noise.natural._base import (
    as_rgb,
    channel_max,
    channel_min,
    corruptions,
    groups,
    like_input,
    spread,
    to_float,
    to_uint8,
)
from robustlab.noise.natural.noise import speckle
from robustlab.noise.natural.tables import Spatter, param_for


@corruptions.register("speckle_noise")
def speckle_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise: x + x N(0, sigma^2)."""
    return speckle(images, param_for("speckle_noise", images, severity), rng)


@corruptions.register("gaussian_blur")
def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of sigma px (edges repeated, kernel truncated at 4 sigma, as scikit-image)."""
    sigma = param_for("gaussian_blur", images, severity)
    return ops.gaussian_blur_uint8(images, sigma)


def liquid_layer(
    rng: np.random.Generator, n: int, height: int, width: int, p: Spatter
) -> np.ndarray:
    """N x H x W float64: N(mean, std) noise, Gaussian-blurred (edges repeated), zeroed below
    ``threshold``."""
    noise = rng.normal(p.mean, p.std, size=(n, height, width))
    layer = np.ascontiguousarray(ops.gaussian_planes(noise, p.sigma))
    # zero below the threshold: OpenCV keeps values above nextafter(threshold, -inf)
    below = np.nextafter(np.float64(p.threshold), -np.inf)
    rows = layer.reshape(-1, width)
    cv2.threshold(rows, below, 0, cv2.THRESH_TOZERO, dst=rows)
    return layer


_WATER = np.array([175, 238, 238], np.float32) / 255  # pale turquoise, RGB
_MUD = np.array([63, 42, 20], np.float32) / 255  # brown, RGB
_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)


def water_mask(layer: np.ndarray, intensity: float) -> np.ndarray:
    """Drop mask of one H x W liquid layer: its edges' distance map, equalised and embossed,
    times the layer, scaled to peak ``intensity`` (OpenCV steps of the reference)."""
    liquid = np.clip(layer * 255, 0, 255).astype(np.uint8)
    dist = 255 - cv2.Canny(liquid, 50, 150)
    dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
    dist = cv2.equalizeHist(dist)
    dist = cv2.filter2D(dist, cv2.CV_8U, _EMBOSS)
    dist = cv2.blur(dist, (3, 3)).astype(np.float32)
    m = liquid.astype(np.float32) * dist
    peak = m.max()
    return m * np.float32(intensity / peak) if peak > 0 else m


def spatter_on(images: np.ndarray, layer: np.ndarray, p: Spatter) -> np.ndarray:
    """Apply liquid layers (N x H x W) to uint8 images: water drops or mud blots."""
    if p.mud == 0:
        m = np.stack([water_mask(one, p.intensity) for one in layer])[..., None]
    else:
        blots = (layer > p.threshold).astype(np.float32)
        m = ops.gaussian_planes(blots, p.intensity)
        m[m < 0.8] = 0
        m = m[..., None]
    if images.shape[-1] == 3:
        colour = _MUD if p.mud else _WATER
        return np.stack(
            [_liquid_rgb(x, one, colour, bool(p.mud)) for x, one in zip(images, m, strict=True)]
        )
    x = as_rgb(to_float(images))
    out = np.clip(x * (1 - m) + m * _MUD if p.mud else x + m * _WATER, 0, 1)
    return to_uint8(like_input(out, images.shape[-1]))


def _liquid_rgb(image: np.ndarray, m: np.ndarray, colour: np.ndarray, mud: bool) -> np.ndarray:
    """One uint8 RGB image under its liquid mask m (H x W x 1), on the 0-255 scale.

    Water: x + 255 m colour; mud: x + m (255 colour - x), i.e. x (1 - m) + 255 m colour;
    clipped to [0, 255] and truncated by OpenCV's rounding conversion (:data:`ops.TRUNCATE`).
    """
    layer = spread(m)
    paint = tuple(float(c) for c in np.float32(255) * colour) + (0.0,)  # float32 values
    if mud:  # (255 colour - x) m + x, each step in float32 as NumPy's
        shift = cv2.subtract(paint, image, dtype=cv2.CV_32F)
        cv2.multiply(shift, layer, dst=shift)
    else:
        shift = cv2.multiply(layer, paint)
    cv2.add(shift, image, dst=shift, dtype=cv2.CV_32F)
    return cv2.convertScaleAbs(shift, beta=ops.TRUNCATE)


@corruptions.register("spatter")
def spatter(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Spatter: water drops (severities with mud = 0) or mud blots (mud = 1) on the image."""
    p = param_for("spatter", images, severity)
    n, h, w, _ = images.shape
    return spatter_on(images, liquid_layer(rng, n, h, w, p), p)


def saturate_float(x: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """HSV saturation s -> clip(s * scale + shift, 0, 1) of float RGB in [0, 1], hue and value kept.

    HSV -> RGB is linear in s at fixed hue and value (each channel is v (1 - s w(hue))), so a
    channel moves to v - (v - x) s' / s; a grey pixel (s = 0) has hue 0 (red) and becomes
    (v, v (1 - s'), v (1 - s')), as scikit-image's rgb2hsv / hsv2rgb give.
    """
    v = channel_max(x)
    delta = v - channel_min(x)
    s = delta / np.maximum(v, np.float32(1e-12))
    s_new = np.clip(s * np.float32(scale) + np.float32(shift), 0, 1)
    grey = delta == 0
    out = v - (v - x) * (s_new / np.maximum(s, np.float32(1e-12)))
    if grey.any():
        n, h, w = np.nonzero(grey[..., 0])
        vg, sg = v[n, h, w, 0], s_new[n, h, w, 0]
        out[n, h, w] = np.stack([vg, vg * (1 - sg), vg * (1 - sg)], axis=-1)
    return out


@lru_cache(maxsize=16)
def saturate_tables(scale: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`saturate_float`'s factor s' / s per (V, min) at index 256 V + min (float32), and
    its grey pixels' second and third channel per V (uint8); read-only."""
    levels = to_float(np.arange(256, dtype=np.uint8))
    v, low = levels[:, None], levels[None, :]
    s = (v - low) / np.maximum(v, np.float32(1e-12))
    s_new = np.clip(s * np.float32(scale) + np.float32(shift), 0, 1)
    ratio = (s_new / np.maximum(s, np.float32(1e-12))).ravel()
    grey = to_uint8(levels * (1 - np.clip(np.float32(shift), 0, 1)))
    for table in (ratio, grey):
        table.setflags(write=False)
    return ratio, grey


def saturate_rgb(image: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """:func:`saturate_float` of one uint8 H x W x 3 image, to uint8, with the same float32
    arithmetic: the factor s' / s is read per pixel from a (V, min) table."""
    ratio_table, grey_table = saturate_tables(float(scale), float(shift))
    v8, low8 = channel_max(image), channel_min(image)
    index = v8.astype(np.uint16)
    index <<= 8
    index |= low8
    ratio = spread(ratio_table.take(index))
    v = to_float(spread(v8))
    out = v - to_float(image)
    out *= ratio
    np.subtract(v, out, out=out)
    result = to_uint8(out)
    grey = v8[..., 0] == low8[..., 0]  # hue 0 (red): (v, v (1 - s'), v (1 - s'))
    if grey.any():
        result[grey, 1:] = grey_table.take(v8[grey])
    return result


@corruptions.register("saturate")
def saturate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Saturate: scale and shift the HSV saturation (grey images: the luma of the result)."""
    scale, shift = param_for("saturate", images, severity)
    out = np.empty_like(images)
    for i in groups(images):  # group by group: the float temporaries stay in cache
        if images.shape[-1] == 3:
            out[i] = saturate_rgb(images[i], scale, shift)
        else:
            one = saturate_float(as_rgb(to_float(images[i])), scale, shift)
            out[i] = to_uint8(like_input(one, 1))
    return out
