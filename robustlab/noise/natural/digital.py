"""Digital corruptions of ImageNet-C: contrast, elastic transform, pixelate and JPEG."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
from PIL import Image

from robustlab.noise.natural import ops
from robustlab.noise.natural._base import corruptions, to_float, to_uint8
from robustlab.noise.natural.tables import Elastic, param_for


@corruptions.register("contrast")
def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """(x - mean) * c + mean, the mean taken per image and channel over H and W (as ImageNet-C)."""
    c = param_for("contrast", images, severity)
    n, h, w, ch = images.shape
    sums = torch.from_numpy(images).reshape(n, h * w, ch).sum(dim=1, dtype=torch.int64).numpy()
    mean = (sums / (h * w * 255.0)).reshape(n, 1, 1, ch)  # exact integer sum, float64 mean
    x = to_float(images) * np.float32(c)
    x += (mean * (1 - c)).astype(np.float32)
    return to_uint8(x)


def elastic_draws(
    rng: np.random.Generator, n: int, height: int, width: int, p: Elastic
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random parts of the elastic transform: N affine maps (2 x 3) and N x H x W fields dx, dy.

    The affine map moves the three points centre + (s, s), (s, -s), (-s, -s) (s = min side // 3)
    by U(-affine, affine) each; the fields are U(-1, 1) noise smoothed by a Gaussian of ``sigma``
    (reflecting borders, truncated at 3 sigma) times ``alpha``. Draw order as in the reference.
    """
    centre = np.float32([height, width]) // 2
    s = min(height, width) // 3
    src = np.float32([centre + s, [centre[0] + s, centre[1] - s], centre - s])
    moved = src + rng.uniform(-p.affine, p.affine, size=(n, 3, 2)).astype(np.float32)
    maps = (
        np.stack([cv2.getAffineTransform(src, dst) for dst in moved]) if n else np.zeros((0, 2, 3))
    )
    rows = ops.gaussian_matrix(height, float(p.sigma), 3.0, "reflect")
    cols = ops.gaussian_matrix(width, float(p.sigma), 3.0, "reflect")
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1, 1, size=(n, height, width))
        fields.append((ops.separable(noise, rows, cols) * p.alpha).astype(np.float32))
    return maps, fields[0], fields[1]


def elastic_apply(x: np.ndarray, maps: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Affine warp (OpenCV, bilinear, REFLECT_101), then bilinear resampling at (y + dy, x + dx).

    ``x`` is float32 N x H x W x C; the resampling reflects at the borders like
    ``scipy.ndimage.map_coordinates(order=1, mode="reflect")``. ``maps=None`` skips the warp.
    """
    n, h, w, c = x.shape
    if maps is not None:
        warped = np.empty_like(x)
        for i in range(n):
            out = cv2.warpAffine(x[i], maps[i], (w, h), borderMode=cv2.BORDER_REFLECT_101)
            warped[i] = out.reshape(h, w, c)
        x = warped
    yy, xx = np.meshgrid(
        np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
    )
    return ops.sample_bilinear(x, yy + dy, xx + dx, "reflect")


@corruptions.register("elastic_transform")
def elastic_transform(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Elastic: random affine warp, then a smooth random displacement field (alpha, sigma)."""
    p = param_for("elastic_transform", images, severity)
    n, h, w, _ = images.shape
    maps, dx, dy = elastic_draws(rng, n, h, w, p)
    return to_uint8(elastic_apply(to_float(images), maps, dx, dy))


@lru_cache(maxsize=256)
def pil_resize_matrix(n_in: int, n_out: int, resample: int) -> np.ndarray:
    """The n_out x n_in weights of PIL's 1-D resize with filter ``resample`` (read-only).

    Read off PIL itself: a float ("F") identity image resized along one axis.
    """
    eye = Image.fromarray(np.eye(n_in, dtype=np.float32))
    m = np.asarray(eye.resize((n_out, n_in), resample), dtype=np.float64).T.copy()
    m.setflags(write=False)
    return m


def _one_hot_source(m: np.ndarray) -> np.ndarray | None:
    """Source index of each output if every row of ``m`` copies one input, else None."""
    nonzero = m != 0
    if (nonzero.sum(axis=1) == 1).all() and np.allclose(m[nonzero], 1.0):
        return np.argmax(nonzero, axis=1)
    return None


def _resize_axis(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """Resize uint8 N x H x W x C along ``axis`` (1 or 2) by PIL weights, 8-bit rounding."""
    source = _one_hot_source(m)
    if source is not None:  # upscaling copies pixels: a gather, no arithmetic
        return np.take(x, source, axis=axis)
    moved = np.moveaxis(x, axis, -1).astype(np.float32)
    out = torch.from_numpy(np.ascontiguousarray(moved)) @ torch.from_numpy(m.astype(np.float32)).T
    out = torch.floor_(out.add_(0.5)).clamp_(0, 255).to(torch.uint8).numpy()
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def pil_resize(images: np.ndarray, width: int, height: int, resample: int) -> np.ndarray:
    """PIL's ``resize`` of uint8 N x H x W x C images: horizontal pass, rounding, vertical pass.

    Same weights and the same 8-bit rounding after each pass as PIL, batched.
    """
    _, h, w, _ = images.shape
    across = _resize_axis(images, pil_resize_matrix(w, width, resample), axis=2)
    return _resize_axis(across, pil_resize_matrix(h, height, resample), axis=1)


@corruptions.register("pixelate")
def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downscale to int(size x factor), box-upscale back (PIL's BOX filter both ways)."""
    factor = param_for("pixelate", images, severity)
    _, h, w, _ = images.shape
    small_w, small_h = max(1, int(w * factor)), max(1, int(h * factor))
    box = Image.Resampling.BOX
    small = pil_resize(images, small_w, small_h, box)
    return pil_resize(small, w, h, box)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one H x W x C uint8 image as JPEG at ``quality``, decode back.

    OpenCV's libjpeg with 4:2:0 chroma subsampling: byte-identical to PIL's ``save(format="JPEG",
    quality=q)``; grey images are coded as one channel (PIL mode "L").
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if image.shape[-1] == 1:
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., 0]), params)
        decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)[..., None]
    else:
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), params)
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
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
