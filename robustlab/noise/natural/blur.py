"""Blur corruptions of ImageNet-C: defocus, glass, motion and zoom blur."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from robustlab.noise.natural import ops
from robustlab.noise.natural._base import corruptions, small_integers, to_uint8
from robustlab.noise.natural.tables import Glass, param_for


def defocus(images: np.ndarray, radius: float, alias_blur: float) -> np.ndarray:
    """Convolve uint8 N x H x W x C images with the anti-aliased disk (OpenCV REFLECT_101),
    truncated to uint8 like the reference (:func:`ops.filtered_uint8`)."""
    kernel = ops.disk_kernel(radius, alias_blur).astype(np.float32)

    def run(image: np.ndarray, dst: np.ndarray) -> None:
        cv2.filter2D(image, cv2.CV_32F, kernel, dst, delta=ops.TRUNCATE, borderType=REFLECT_101)

    return ops.filtered_uint8(images, run)


REFLECT_101 = cv2.BORDER_REFLECT_101


@corruptions.register("defocus_blur")
def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Defocus: per-channel convolution with an anti-aliased disk (radius, alias sigma)."""
    radius, alias_blur = param_for("defocus_blur", images, severity)
    return defocus(images, radius, alias_blur)


def glass_shuffle_index(
    rng: np.random.Generator, n: int, height: int, width: int, max_delta: int, iterations: int
) -> np.ndarray:
    """Source indices (N x H x W, into the flattened batch) of ImageNet-C's local pixel shuffle.

    The reference visits (h, w) from (H - d, W - d) down to (d + 1, d + 1), row by row, and
    executes ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with (h', w') = (h + dy, w + dx),
    dy, dx uniform in -d .. d - 1. On an H x W x C array both sides are views, so the statement
    copies: x[h, w] takes the value x[h', w'] holds at that moment and x[h', w'] is unchanged
    (only a 2-D grey array would swap). Each pixel is written once per iteration, so its final
    source follows the chain of copies through pixels written earlier; all chains are resolved
    at once here instead of looping pixel by pixel. Each visit draws one integer c in
    0 .. (2d)^2 - 1: dy = c // 2d - d, dx = c % 2d - d.
    """
    d = int(max_delta)
    size = height * width
    index_type = np.intp  # pointer-sized: NumPy gathers without converting the index
    if height - 2 * d < 1 or width - 2 * d < 1:
        return np.arange(n * size, dtype=index_type).reshape(n, height, width)
    inner = (height - 2 * d, width - 2 * d)
    code = np.arange(4 * d * d)
    code_type = np.uint8 if len(code) <= 256 else np.uint16
    # all draws first, in the reference's order (iteration by iteration, each over the batch)
    if code_type is np.uint8:
        codes = [small_integers(rng, len(code), (n, *inner)) for _ in range(iterations)]
    else:
        codes = [
            rng.integers(0, len(code), size=(n, *inner), dtype=code_type) for _ in range(iterations)
        ]
    offsets = ((code // (2 * d) - d) * width + code % (2 * d) - d).astype(index_type)
    out = np.empty((n, height, width), index_type)
    per = max(1, (1 << 16) // size)  # images per group: the index arrays stay in cache
    for a in range(0, n, per):
        group = [offsets.take(c[a : a + per]) for c in codes]
        local = _shuffle_group(len(group[0]), height, width, d, group, index_type)
        out[a : a + per] = local + index_type(a * size)
    return out


def _shuffle_group(
    n: int, height: int, width: int, d: int, offsets: list[np.ndarray], index_type: type
) -> np.ndarray:
    """:func:`glass_shuffle_index` of n images, given each iteration's offsets (inner block)."""
    size = height * width
    flat = np.arange(n * size, dtype=index_type)
    block = (slice(None), slice(d + 1, height - d + 1), slice(d + 1, width - d + 1))
    here = flat.reshape(n, height, width)[block].copy()  # the visited pixels, global indices
    visited = np.zeros(n * size, bool)
    visited.reshape(n, height, width)[block] = True
    total = None
    # outside the block every pixel is its own source and no copy continues: written once
    src, cont = flat.copy(), np.zeros(n * size, bool)
    src_block, cont_block = (
        src.reshape(n, height, width)[block],
        cont.reshape(n, height, width)[block],
    )
    for offset in offsets:
        target = here + offset
        src_block[...] = target
        # the copy continues through its source if the loop wrote that earlier: the source is
        # visited and later in raster order (offset > 0, the loop runs backwards)
        np.greater(offset, 0, out=cont_block)
        cont_block &= visited.take(target)
        result = src.copy()
        active = np.flatnonzero(cont)
        cur = src.take(active)
        while len(active):
            step = src.take(cur)
            result[active] = step
            more = cont.take(cur)
            active, cur = active[more], step[more]
        total = result if total is None else total.take(result)
    return (flat if total is None else total).reshape(n, height, width)


def glass(x_uint8: np.ndarray, params: Glass, rng: np.random.Generator) -> np.ndarray:
    """Blur, truncate to uint8, shuffle pixels locally, blur again and truncate (uint8)."""
    n, h, w, c = x_uint8.shape
    blurred = ops.gaussian_blur_uint8(x_uint8, params.sigma)
    index = glass_shuffle_index(rng, n, h, w, params.max_delta, params.iterations)
    pixels = blurred.reshape(n * h * w, c).view(np.dtype((np.void, c)))  # one item per pixel
    shuffled = np.take(pixels, index.ravel()).view(np.uint8).reshape(n, h, w, c)
    return ops.gaussian_blur_uint8(shuffled, params.sigma)


@corruptions.register("glass_blur")
def glass_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Frosted glass: Gaussian blur, local pixel shuffle (max_delta, iterations), blur again."""
    return glass(images, param_for("glass_blur", images, severity), rng)


@corruptions.register("motion_blur")
def motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Motion blur along a random direction U(-45, 45) degrees per image (radius, sigma)."""
    radius, sigma = param_for("motion_blur", images, severity)
    angles = rng.uniform(-45, 45, size=len(images))
    if len(images) and images[0].size < ops.MOTION_GROUP_VALUES:  # images blurred in groups
        blurred = ops.motion_blur(images.astype(np.float32), angles, radius, sigma)
        return to_uint8(blurred, scale=1.0)
    out = np.empty_like(images)
    for i, image in enumerate(images):  # large images: one at a time, converted in cache
        blurred = ops.motion_blur(image[None].astype(np.float32), angles[i : i + 1], radius, sigma)
        out[i] = to_uint8(blurred, scale=1.0)[0]
    return out


def zoom_factors(stop: float, step: float) -> np.ndarray:
    """The reference's ``np.arange(1, stop, step)``."""
    return np.arange(1, stop, step)


def zoom(images: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Average of uint8 images and their centre zooms by each factor, truncated to uint8.

    Each zoom samples the image bilinearly where :func:`ops.zoom_matrix` does (scipy's
    ``zoom(order=1)`` of the centre crop), as one OpenCV ``remap`` per image and factor with
    maps cached per size and factor, on the 0-255 scale; an image and its running sum stay in
    cache throughout, and the mean is scaled and truncated in one OpenCV conversion.
    """
    n, h, w, c = images.shape
    maps = [zoom_maps(h, w, float(f)) for f in factors]
    scale = 1 / (len(factors) + 1)
    out = np.empty_like(images)
    for i in range(n):
        x = ops.warp_planes(images[i])  # RGB as four channels: OpenCV's fast path
        acc = x.copy()
        zoomed = np.empty_like(x)
        for map_x, map_y in maps:
            cv2.remap(x, map_x, map_y, cv2.INTER_LINEAR, zoomed, cv2.BORDER_REPLICATE)
            cv2.add(acc, zoomed, dst=acc)
        mean = cv2.convertScaleAbs(acc, alpha=scale, beta=ops.TRUNCATE)
        out[i] = mean.reshape(h, w, -1)[..., :c]
    return out


@lru_cache(maxsize=256)
def zoom_maps(height: int, width: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV remap coordinates (x, y; float32 H x W each) of a centre zoom by ``factor``.

    Output pixel i of a side of n reads input ``top + i (crop - 1) / (out - 1)``
    (:func:`ops.zoom_size`), the sampling of scipy's ``zoom(order=1)`` of the centre crop.
    """
    coords = []
    for n in (width, height):
        top, crop, out = ops.zoom_size(n, factor)
        step = (crop - 1) / (out - 1) if out > 1 else 1.0
        coords.append((top + np.arange(n) * step).astype(np.float32))
    map_x = np.ascontiguousarray(np.broadcast_to(coords[0][None, :], (height, width)))
    map_y = np.ascontiguousarray(np.broadcast_to(coords[1][:, None], (height, width)))
    for m in (map_x, map_y):
        m.setflags(write=False)
    return map_x, map_y


@corruptions.register("zoom_blur")
def zoom_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Zoom blur: mean of the image and its centre zooms by 1, 1 + step, ... < stop."""
    stop, step = param_for("zoom_blur", images, severity)
    return zoom(images, zoom_factors(stop, step))
