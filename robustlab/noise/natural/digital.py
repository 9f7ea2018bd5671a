"""Digital corruptions of ImageNet-C: contrast, elastic transform, pixelate and JPEG."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from robustlab.noise.natural import ops
from robustlab.noise.natural._base import corruptions, to_float, to_uint8, uniform32
from robustlab.noise.natural.tables import Elastic, param_for


@corruptions.register("contrast")
def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """(x - mean) * c + mean, the mean taken per image and channel over H and W (as ImageNet-C).

    The map is affine per image and channel, so it runs as one 256-entry lookup table each
    (OpenCV ``LUT``), each entry computed with the float32 arithmetic of the direct formula.
    """
    c = param_for("contrast", images, severity)
    n, h, w, ch = images.shape
    # exact integer sums (float64 holds them exactly), float64 mean
    sums = np.array([cv2.sumElems(image)[:ch] for image in images], np.float64)
    mean = (sums / (h * w * 255.0)).reshape(n, 1, ch)
    levels = to_float(np.arange(256, dtype=np.uint8)).reshape(1, 256, 1) * np.float32(c)
    luts = to_uint8(levels + (mean * (1 - c)).astype(np.float32))  # n x 256 x ch
    out = np.empty_like(images)
    for i in range(n):
        out[i] = cv2.LUT(images[i], luts[i].reshape(256, 1, ch)).reshape(h, w, ch)
    return out


def elastic_draws(
    rng: np.random.Generator, n: int, height: int, width: int, p: Elastic
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random parts of the elastic transform: N affine maps (2 x 3) and N x H x W fields dx, dy.

    The affine map moves the three points centre + (s, s), (s, -s), (-s, -s) (s = min side // 3)
    by U(-affine, affine) each; the fields are U(-1, 1) noise smoothed by a Gaussian of ``sigma``
    (reflecting borders, truncated at 3 sigma) times ``alpha``, in float32 (the displacements
    differ from float64's by under 1e-4 px). Draw order as in the reference.
    """
    centre = np.float32([height, width]) // 2
    s = min(height, width) // 3
    src = np.float32([centre + s, [centre[0] + s, centre[1] - s], centre - s])
    moved = src + rng.uniform(-p.affine, p.affine, size=(n, 3, 2)).astype(np.float32)
    maps = (
        np.stack([cv2.getAffineTransform(src, dst) for dst in moved]) if n else np.zeros((0, 2, 3))
    )
    fields = []
    for _ in range(2):
        noise = uniform32(rng, -1, 1, (n, height, width))
        smooth = ops.gaussian_planes(noise, p.sigma, "reflect", truncate=3.0)
        smooth *= np.float32(p.alpha)
        fields.append(smooth)
    return maps, fields[0], fields[1]


def elastic_apply(
    images: np.ndarray, maps: np.ndarray | None, dx: np.ndarray, dy: np.ndarray
) -> np.ndarray:
    """Affine warp (OpenCV, bilinear, REFLECT_101), then bilinear resampling at (y + dy, x + dx).

    ``images`` is uint8 N x H x W x C, resampled on the 0-255 scale in float32 and truncated to
    uint8 like the reference. The resampling reflects at the borders like
    ``scipy.ndimage.map_coordinates(order=1, mode="reflect")`` (OpenCV ``remap`` with
    ``BORDER_REFLECT``, which mirrors the pixel indices the same way). ``maps=None`` skips the
    warp. One image at a time, so an image and its warp stay in cache.
    """
    n, h, w, c = images.shape
    grid_x, grid_y = pixel_grid(h, w)
    out = np.empty_like(images)
    for i in range(n):
        image = ops.warp_planes(images[i])  # RGB as four channels: OpenCV's fast path
        if maps is not None:
            image = cv2.warpAffine(image, maps[i], (w, h), borderMode=cv2.BORDER_REFLECT_101)
        sampled = cv2.remap(
            image, grid_x + dx[i], grid_y + dy[i], cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT
        )
        out[i] = cv2.convertScaleAbs(sampled, beta=ops.TRUNCATE).reshape(h, w, -1)[..., :c]
    return out


@lru_cache(maxsize=64)
def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates (float32 H x W each, read-only)."""
    yy, xx = np.meshgrid(
        np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij"
    )
    for grid in (xx, yy):
        grid.setflags(write=False)
    return xx, yy


@corruptions.register("elastic_transform")
def elastic_transform(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Elastic: random affine warp, then a smooth random displacement field (alpha, sigma)."""
    p = param_for("elastic_transform", images, severity)
    n, h, w, _ = images.shape
    maps, dx, dy = elastic_draws(rng, n, h, w, p)
    return elastic_apply(images, maps, dx, dy)


def _pil_box(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL's BOX resize of one H x W x C uint8 array (C = 1: mode "L") to width x height."""
    plane = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(plane.resize((width, height), Image.Resampling.BOX))
    return out.reshape(height, width, image.shape[-1])


def box_edges_on_centres(n_in: int, n_out: int) -> bool:
    """Whether an edge of BOX's boxes (i n_in / n_out, 0 < i < n_out) is a pixel centre m + 0.5.

    Only there does PIL's choice of pixels depend on the last bit of its float arithmetic.
    """
    return any((2 * i * n_in) % n_out == 0 and (2 * i * n_in // n_out) % 2 for i in range(1, n_out))


def box_resize(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL's BOX ``resize`` of uint8 N x H x W x C images, bit for bit, batched through PIL.

    PIL resizes horizontally, rounds to 8 bits, then resizes vertically; each pass is
    independent per row (column). The batch goes through as one tall image (the images
    stacked). Horizontally that is the images' own pass; vertically the tall image's boxes are
    the images' boxes shifted by k H (the scale N H / N h is H / h), as long as no box edge is
    a pixel centre, where float rounding of the shifted positions could pick differently: then
    the vertical pass runs on the images side by side (one wide image) instead. A grey image is
    one "L" plane, resized with the arithmetic of each RGB band.
    """
    n, h, w, c = images.shape
    tall = images.reshape(n * h, w, c)
    if not box_edges_on_centres(h, height):
        return _pil_box(tall, width, n * height).reshape(n, height, width, c)
    across = _pil_box(tall, width, n * h).reshape(n, h, width, c)
    wide = np.ascontiguousarray(across.transpose(1, 0, 2, 3)).reshape(h, n * width, c)
    down = _pil_box(wide, n * width, height).reshape(height, n, width, c)
    return np.ascontiguousarray(down.transpose(1, 0, 2, 3))


@lru_cache(maxsize=256)
def box_upscale_source(n_in: int, n_out: int) -> np.ndarray:
    """Input index each output copies in PIL's BOX upscale from ``n_in`` to ``n_out`` (read-only).

    Upscaling, BOX's box is one input wide, so it holds exactly one input centre and every
    output copies one input (PIL's fixed-point weight 2^22 x 1 reproduces it exactly). Read
    off PIL itself on a float ("F") ramp; ties go as PIL's (not NEAREST's) way.
    """
    if n_out < n_in:
        raise ValueError(f"box_upscale_source: {n_in} -> {n_out} is not an upscale")
    ramp = Image.fromarray(np.arange(n_in, dtype=np.float32)[None, :])
    source = np.asarray(ramp.resize((n_out, 1), Image.Resampling.BOX))[0].astype(np.intp)
    source.setflags(write=False)
    return source


@lru_cache(maxsize=256)
def opencv_copies_like_pil(n_in: int, n_out: int) -> bool:
    """Whether OpenCV's INTER_NEAREST_EXACT upscale picks :func:`box_upscale_source`'s inputs."""
    ramp = np.arange(n_in, dtype=np.uint16)[None, :]
    picked = cv2.resize(ramp, (n_out, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0]
    return bool(np.array_equal(picked, box_upscale_source(n_in, n_out)))


def box_upscale(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL's BOX upscale of uint8 N x H x W x C images: a copy of one input per output.

    Columns through OpenCV's pixel-centre nearest resize on the stacked images where it picks
    the same inputs (checked per size pair), else a gather; rows by a gather.
    """
    n, h, w, c = images.shape
    if opencv_copies_like_pil(w, width):
        tall = np.ascontiguousarray(images).reshape(n * h, w, c)
        across = cv2.resize(tall, (width, n * h), interpolation=cv2.INTER_NEAREST_EXACT)
        across = across.reshape(n, h, width, c)
    else:
        across = np.take(images, box_upscale_source(w, width), axis=2)
    return np.take(across, box_upscale_source(h, height), axis=1)


@corruptions.register("pixelate")
def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downscale to int(size x factor), box-upscale back (PIL's BOX filter both ways).

    :func:`box_resize` and :func:`box_upscale`: the same bytes as PIL image by image.
    """
    factor = param_for("pixelate", images, severity)
    _, h, w, _ = images.shape
    small = box_resize(images, max(1, int(w * factor)), max(1, int(h * factor)))
    return box_upscale(small, w, h)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one H x W x C uint8 image as JPEG at ``quality``, decode back.

    OpenCV's libjpeg with 4:2:0 chroma subsampling: byte-identical to PIL's ``save(format="JPEG",
    quality=q)``; grey images are coded as one channel (PIL mode "L").
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if image.shape[-1] == 1:
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., 0]), params)
        decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)[..., None]
    else:  # OpenCV's channel swaps: far faster than NumPy's reversed-stride copies
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {image.shape} image")
    return decoded


@corruptions.register("jpeg_compression")
def jpeg_compression(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG encode/decode at the table's quality (grey images as one-channel JPEG)."""
    quality = param_for("jpeg_compression", images, severity)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = jpeg_roundtrip(image, quality)
    return out
