"""Batched numerical building blocks: separable filters as matrices, linear zoom, shifts, warps.

Linear filters along one axis are applied as an n_out x n matrix, so boundary rules (replicate,
reflect) and zoom crops are exact, any radius works (even one larger than the image), and a whole
batch is two matrix products. Matrices depend only on the size and the parameter and are cached.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def planes(x: np.ndarray) -> np.ndarray:
    """N x H x W x C -> (N C) x H x W, contiguous."""
    n, h, w, c = x.shape
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n * c, h, w)


def unplanes(p: np.ndarray, channels: int) -> np.ndarray:
    """(N C) x H x W -> N x H x W x C."""
    nc, h, w = p.shape
    return np.ascontiguousarray(p.reshape(nc // channels, channels, h, w).transpose(0, 2, 3, 1))


def boundary_index(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map integer positions outside 0..n-1 inside, for any distance.

    ``nearest`` repeats the edge (scipy "nearest", OpenCV REPLICATE); ``reflect`` mirrors about
    the edge, repeating it (scipy "reflect": d c b a | a b c d | d c b a); ``reflect101`` mirrors
    about the edge pixel (scipy "mirror", OpenCV's default REFLECT_101: d c b | a b c d | c b a).
    """
    index = np.asarray(index)
    if mode == "nearest":
        return np.clip(index, 0, n - 1)
    if mode == "reflect":
        period = 2 * n
        r = np.mod(index, period)
        return np.where(r < n, r, period - 1 - r)
    if mode == "reflect101":
        if n == 1:
            return np.zeros_like(index)
        period = 2 * n - 2
        r = np.mod(index, period)
        return np.where(r < n, r, period - r)
    raise ValueError(f"unknown boundary mode {mode!r}; known: nearest, reflect, reflect101")


def gaussian_taps(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised Gaussian taps of scipy's ``gaussian_filter`` (radius int(truncate sigma + .5))."""
    radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        return np.ones(1)
    i = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (i / sigma) ** 2)
    return g / g.sum()


def correlation_matrix(n: int, taps: np.ndarray, mode: str) -> np.ndarray:
    """n x n matrix M with (M @ v)[i] = sum_t taps[t] v[i + t - r] under boundary ``mode``."""
    r = len(taps) // 2
    rows = np.repeat(np.arange(n), len(taps))
    cols = boundary_index(np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :], n, mode).ravel()
    m = np.zeros((n, n))
    np.add.at(m, (rows, cols), np.tile(taps, n))
    return m


@lru_cache(maxsize=256)
def gaussian_matrix(n: int, sigma: float, truncate: float, mode: str) -> np.ndarray:
    """Cached float64 matrix of a 1-D Gaussian filter of length ``n`` (read-only)."""
    m = correlation_matrix(n, gaussian_taps(sigma, truncate), mode)
    m.setflags(write=False)
    return m


def _torch(a: np.ndarray, dtype: np.dtype) -> torch.Tensor:
    a = np.ascontiguousarray(a, dtype=dtype)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def along_width(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``plane @ m.T`` for every plane of a P x H x W stack (one large product).

    Products run in torch, so they follow ``torch.set_num_threads`` like the rest of robustlab.
    """
    count, h, w = p.shape
    out = _torch(p, p.dtype).reshape(count * h, w) @ _torch(m, p.dtype).T
    return out.reshape(count, h, -1).numpy()


def along_height(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``m @ plane`` for every plane of a P x H x W stack."""
    return torch.matmul(_torch(m, p.dtype), _torch(p, p.dtype)).numpy()


def separable(p: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``rows @ plane @ cols.T`` for every plane of a P x H x W stack."""
    return along_height(along_width(p, cols), rows)


#: OpenCV border modes equal to the boundary rules of :func:`boundary_index` (within one image
#: side of the edge).
CV2_BORDERS = {
    "nearest": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
}


#: A separable filter longer than this share of the shorter side runs as dense matrix products
#: (one BLAS call for the batch) instead of OpenCV's per-plane filter; measured on one thread.
MATRIX_SHARE = 0.25


def matrix_is_faster(taps: int, height: int, width: int) -> bool:
    """Whether a ``taps``-long filter runs as matrices (it must where it outreaches a side)."""
    return taps // 2 >= min(height, width) or taps > MATRIX_SHARE * min(height, width)


def gaussian_planes(
    p: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> np.ndarray:
    """Gaussian blur of every plane of a P x H x W float stack (scipy's taps and boundaries).

    OpenCV's separable filter per plane where the radius is shorter than both sides (its border
    rules agree with scipy's there) and the filter is short, else the filter matrices, which
    extend the boundary rule to any distance (and, as one matrix product, beat long filters).
    """
    count, h, w = p.shape
    taps = gaussian_taps(sigma, truncate)
    if matrix_is_faster(len(taps), h, w) or mode not in CV2_BORDERS:
        rows = gaussian_matrix(h, float(sigma), truncate, mode)
        cols = gaussian_matrix(w, float(sigma), truncate, mode)
        return separable(p, rows, cols)
    kernel = taps.astype(p.dtype)
    out = np.empty_like(p)
    for i in range(count):
        out[i] = cv2.sepFilter2D(p[i], -1, kernel, kernel, borderType=CV2_BORDERS[mode])
    return out


def gaussian_blur(
    x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> np.ndarray:
    """Gaussian blur over H and W of N x H x W x C float images (scipy/skimage conventions).

    scipy's taps (radius int(truncate sigma + 0.5)); OpenCV's separable filter per image where
    the radius is shorter than both sides (its border rules agree with scipy's there), else the
    filter matrices, which extend the boundary rule to any distance.
    """
    n, h, w, c = x.shape
    taps = gaussian_taps(sigma, truncate)
    if len(taps) // 2 < min(h, w) and mode in CV2_BORDERS:
        kernel = taps.astype(np.float32)
        out = np.empty_like(x)
        for i in range(n):
            blurred = cv2.sepFilter2D(x[i], -1, kernel, kernel, borderType=CV2_BORDERS[mode])
            out[i] = blurred.reshape(h, w, c)
        return out
    rows = gaussian_matrix(h, float(sigma), truncate, mode)
    cols = gaussian_matrix(w, float(sigma), truncate, mode)
    return unplanes(separable(planes(x), rows, cols), c)


#: Added by OpenCV's filters before their rounding conversion to 8 bits: rounding y + GUARD - 1/2
#: to the nearest integer is the references' truncation of y (plus the guard of ``to_uint8``).
TRUNCATE = 2e-4 - 0.5


def warp_planes(image: np.ndarray) -> np.ndarray:
    """One uint8 H x W x C image as float32 for OpenCV's warps: RGB gains a fourth channel.

    OpenCV's bilinear ``remap`` and ``warpAffine`` have vectorised paths for one and four float
    channels but not three: on four channels they run two to three times faster with the same
    values in the first three (the fourth is dropped afterwards).
    """
    x = image.astype(np.float32)
    return cv2.cvtColor(x, cv2.COLOR_RGB2RGBA) if x.shape[-1] == 3 else x


def filtered_uint8(images: np.ndarray, run: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
    """uint8 N x H x W x C images through a linear filter on the 0-255 scale, truncated to uint8.

    ``run(image, dst)`` filters one uint8 image into the float32 ``dst`` (H x W x C), with
    :data:`TRUNCATE` added; OpenCV's saturating, rounding conversion then gives the references'
    ``uint8(clip(y / 255, 0, 1) * 255)`` (within float error) without float passes over the
    batch. Filters here have non-negative results, so ``convertScaleAbs`` (|v|, rounded and
    saturated) clips small negatives to 0 as well.
    """
    n, h, w, c = images.shape
    out = np.empty_like(images)
    work = np.empty((h, w, c), np.float32)
    for i in range(n):
        run(images[i], work)
        out[i] = cv2.convertScaleAbs(work).reshape(h, w, c)
    return out


def gaussian_blur_uint8(images: np.ndarray, sigma: float, mode: str = "nearest") -> np.ndarray:
    """``to_uint8(gaussian_blur(to_float(images), sigma, mode))`` of uint8 images, computed on the
    0-255 scale with OpenCV's separable filter where it applies (radius under both sides)."""
    _, h, w, c = images.shape
    taps = gaussian_taps(sigma)
    if len(taps) // 2 >= min(h, w) or mode not in CV2_BORDERS:
        x = gaussian_blur(images.astype(np.float32), sigma, mode)
        x += np.float32(2e-4)
        np.clip(x, 0, 255, out=x)
        return x.astype(np.uint8)
    kernel = taps.astype(np.float32)
    border = CV2_BORDERS[mode]

    def run(image: np.ndarray, dst: np.ndarray) -> None:
        cv2.sepFilter2D(image, cv2.CV_32F, kernel, kernel, dst, delta=TRUNCATE, borderType=border)

    return filtered_uint8(images, run)


def zoom_size(n: int, factor: float) -> tuple[int, int, int]:
    """(crop start, crop length, zoomed length) of a centre-crop zoom along a side of ``n``."""
    crop = int(np.ceil(n / float(factor)))
    return (n - crop) // 2, crop, int(round(crop * factor))


@lru_cache(maxsize=1024)
def zoom_matrix(n: int, factor: float, full: bool = False) -> np.ndarray:
    """Linear zoom of the centred crop ``ceil(n / factor)`` by ``factor``, as a matrix.

    Same sampling as ``scipy.ndimage.zoom(order=1)``: output i reads input
    ``i (crop - 1) / (out - 1)``. Rows are the first ``n`` outputs, or all of them if ``full``.
    """
    top, crop, out = zoom_size(n, factor)
    step = (crop - 1) / (out - 1) if out > 1 else 1.0
    rows = out if full else n
    pos = np.arange(rows) * step
    lo = np.floor(pos).astype(int)
    t = pos - lo
    m = np.zeros((rows, n))
    m[np.arange(rows), top + lo] += 1 - t
    inside = lo + 1 < crop
    m[np.arange(rows)[inside], top + lo[inside] + 1] += t[inside]
    m.setflags(write=False)
    return m


@lru_cache(maxsize=1024)
def zoom_taps(n: int, factor: float, full: bool = False) -> tuple[np.ndarray, ...]:
    """:func:`zoom_matrix`'s two taps per output row: (lo, hi, lo weight, hi weight), read-only.

    Row i of the matrix is ``w_lo[i]`` at column ``lo[i]`` and ``w_hi[i]`` at ``hi[i]`` (0 where
    the row has one entry), so the zoom is two gathers instead of a dense product.
    """
    m = zoom_matrix(n, factor, full)
    rows = np.arange(len(m))
    nonzero = m != 0
    lo = nonzero.argmax(axis=1)
    hi = n - 1 - nonzero[:, ::-1].argmax(axis=1)
    w_lo, w_hi = m[rows, lo], np.where(hi != lo, m[rows, hi], 0.0)
    for a in (lo, hi, w_lo, w_hi):
        a.setflags(write=False)
    return lo, hi, w_lo, w_hi


def zoom_support(n: int, factor: float) -> slice:
    """The input positions along a side of ``n`` that :func:`zoom_planes` reads."""
    lo, hi, _, _ = zoom_taps(n, float(factor), True)
    return slice(int(lo.min()), int(hi.max()) + 1)


def zoom_planes(p: np.ndarray, factor: float) -> np.ndarray:
    """:func:`zoom_matrix` (``full``) applied to both sides of every plane of a P x H x W stack.

    Columns first, then rows, like :func:`separable`; each output is a two-tap sum. Only the
    rows the zoom reads go through the (slow, element-wise) column gathers.
    """
    _, h, w = p.shape
    r_lo, r_hi, r_wlo, r_whi = zoom_taps(h, float(factor), True)
    first, last = int(r_lo.min()), int(r_hi.max()) + 1
    crop = p[:, first:last]
    lo, hi, w_lo, w_hi = zoom_taps(w, float(factor), True)
    across = crop[:, :, lo] * w_lo.astype(p.dtype)
    across += crop[:, :, hi] * w_hi.astype(p.dtype)
    out = across[:, r_lo - first, :] * r_wlo.astype(p.dtype)[:, None]
    out += across[:, r_hi - first, :] * r_whi.astype(p.dtype)[:, None]
    return out


def motion_offsets(angles: np.ndarray, width: int, height: int, img_width: int) -> np.ndarray:
    """Integer (dy, dx) sampling offsets of a motion-blur line, one row per tap and image.

    Tap i samples the image at (y + dy_i, x + dx_i) with dy_i = ceil(i sin(a) - 0.5),
    dx_i = ceil(i cos(a) - 0.5) (ImageMagick's MotionBlurImage geometry). Taps from the first
    one whose offset reaches the image size on are marked invalid (the reference stops there).
    Returns an N x width x 3 int array (dy, dx, valid).
    """
    rad = np.deg2rad(np.asarray(angles, np.float64))
    point_y, point_x = width * np.sin(rad), width * np.cos(rad)
    hyp = np.hypot(point_y, point_x)
    i = np.arange(width)[None, :]
    dy = np.ceil(i * point_y[:, None] / hyp[:, None] - 0.5).astype(int)
    dx = np.ceil(i * point_x[:, None] / hyp[:, None] - 0.5).astype(int)
    outside = (np.abs(dy) >= height) | (np.abs(dx) >= img_width)
    valid = np.cumsum(outside, axis=1) == 0
    return np.stack([dy, dx, valid.astype(int)], axis=-1)


def motion_taps(radius: int, sigma: float) -> np.ndarray:
    """2 radius + 1 one-sided Gaussian weights exp(-i^2 / 2 sigma^2), normalised to sum 1."""
    i = np.arange(2 * int(radius) + 1, dtype=np.float64)
    k = np.exp(-(i**2) / (2 * sigma**2))
    return k / k.sum()


#: Values per group of images in :func:`motion_blur`: a group's image and sum stay in cache.
MOTION_GROUP_VALUES = 1 << 17


def motion_blur(x: np.ndarray, angles: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    """Blur N x H x W x C float images along a line at ``angles`` (degrees, one per image).

    Each tap is the image shifted by the tap's offset with edge replication, weighted by
    :func:`motion_taps`. Images are visited in order of angle, so neighbours share most tap
    offsets and each run of equal offsets is one strided in-place add over the run; the
    images go in groups of about :data:`MOTION_GROUP_VALUES` values, so that the taps of a
    group work in cache (one image at a time at 224 px).
    """
    n, h, w, c = x.shape
    taps = motion_taps(radius, sigma)
    offsets = motion_offsets(angles, len(taps), h, w)
    order = np.argsort(angles, kind="stable")
    result = np.empty(x.shape, x.dtype)
    group = max(1, MOTION_GROUP_VALUES // (h * w * c))
    for start in range(0, n, group):
        chosen = order[start : start + group]
        result[chosen] = _motion_group(x[chosen], offsets[chosen], taps)
    return result


def _motion_group(x: np.ndarray, offsets: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """:func:`motion_blur` of a group of images with their N x taps x 3 offsets."""
    n, h, w, _ = x.shape
    valid = offsets[..., 2] == 1
    pad = int(np.abs(offsets[..., :2])[valid].max()) if valid.any() else 0
    padded = torch.from_numpy(edge_pad(x, pad))
    out = torch.zeros(x.shape, dtype=padded.dtype)
    # per image and tap: (valid, y0, x0), the top-left corner of its window in the padded image
    corners = np.stack([valid, offsets[..., 0] + pad, offsets[..., 1] + pad], axis=-1).tolist()
    if n == 1:  # one image (large images): its taps in order, without grouping
        for (ok, y0, x0), weight in zip(corners[0], taps.tolist(), strict=True):
            if ok:
                out.add_(padded[:, y0 : y0 + h, x0 : x0 + w], alpha=weight)
        return out.numpy()
    for i, weight in enumerate(taps.tolist()):
        a = 0  # runs of images with the same window: one strided add each
        for (ok, y0, x0), run in itertools.groupby(tuple(image[i]) for image in corners):
            b = a + sum(1 for _ in run)
            if ok:
                out[a:b].add_(padded[a:b, y0 : y0 + h, x0 : x0 + w], alpha=weight)
            a = b
    return out.numpy()


def edge_pad(x: np.ndarray, pad: int) -> np.ndarray:
    """N x H x W x C images with ``pad`` pixels of repeated edge on every side."""
    if pad == 0:
        return x
    n, h, w, c = x.shape
    if c > 4 or x.dtype not in (np.float32, np.float64):
        return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = np.empty((n, h + 2 * pad, w + 2 * pad, c), x.dtype)
    for i in range(n):  # OpenCV's border copy: far faster than np.pad
        padded = cv2.copyMakeBorder(x[i], pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        out[i] = padded.reshape(out.shape[1:])
    return out


def sample_bilinear(x: np.ndarray, ys: np.ndarray, xs: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear samples of N x H x W x C images at per-image pixel coordinates (N x h x w each).

    ``mode="reflect"`` extends the image like scipy's ``map_coordinates(mode="reflect")``
    (mirror about the outer pixel edges, then clamp); ``mode="constant"`` treats pixels outside as
    0 (scikit-image ``warp`` with cval 0). Runs as ``torch.nn.functional.grid_sample``.
    """
    n, h, w, _ = x.shape
    padding = {"reflect": "reflection", "constant": "zeros"}.get(mode)
    if padding is None:
        raise ValueError(f"unknown sampling mode {mode!r}; known: reflect, constant")
    grid = np.empty((*ys.shape, 2), np.float32)
    grid[..., 0] = (2 * xs + 1) / w - 1  # pixel centres at (2 i + 1) / size - 1
    grid[..., 1] = (2 * ys + 1) / h - 1
    image = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
    out = F.grid_sample(
        image, torch.from_numpy(grid), mode="bilinear", padding_mode=padding, align_corners=False
    )
    return np.ascontiguousarray(out.numpy().transpose(0, 2, 3, 1))


def centred_affine(matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """2 x 3 affine map p -> A p + t in (x, y) pixel coordinates that fixes the image centre."""
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    return np.concatenate([matrix, (centre - matrix @ centre)[:, None]], axis=1)


def warp_affine(x: np.ndarray, maps: np.ndarray, mode: str = "constant") -> np.ndarray:
    """out(p) = image(M p) for N x H x W x C float images and N x 2 x 3 inverse maps M."""
    n, h, w, _ = x.shape
    yy, xx = np.meshgrid(
        np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij"
    )
    src_x = (
        maps[:, 0, 0, None, None] * xx + maps[:, 0, 1, None, None] * yy + maps[:, 0, 2, None, None]
    )
    src_y = (
        maps[:, 1, 0, None, None] * xx + maps[:, 1, 1, None, None] * yy + maps[:, 1, 2, None, None]
    )
    return sample_bilinear(x, src_y, src_x, mode)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """ImageNet-C's anti-aliased disk: a normalised disk of ``radius`` blurred by a Gaussian.

    Support is 17 x 17 for radius <= 8 (3 x 3 Gaussian), else (2 radius + 1)^2 (5 x 5 Gaussian),
    as in the reference, whose blur mirrors at the support's border (OpenCV REFLECT_101). Like
    the reference's, the kernels of radius 8 and 10 sum to 1.013 and 1.011 (the mirror puts mass
    back in); all-zero border rows and columns are dropped (same result, less work).
    """
    half, ksize = (8, 3) if radius <= 8 else (int(radius), 5)
    coords = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = _opencv_gaussian_taps(ksize, alias_blur)
    m = correlation_matrix(len(coords), g, "reflect101")
    kernel = m @ disk @ m.T
    keep = np.nonzero(np.abs(kernel).max(axis=1) > 0)[0]
    lo = min(keep[0], len(coords) - 1 - keep[-1])
    return kernel[lo : len(coords) - lo, lo : len(coords) - lo]


def _opencv_gaussian_taps(ksize: int, sigma: float) -> np.ndarray:
    """``cv2.getGaussianKernel(ksize, sigma)`` for sigma > 0: exp(-(i - r)^2 / 2 sigma^2), sum 1."""
    i = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(i**2) / (2 * sigma**2))
    return g / g.sum()
