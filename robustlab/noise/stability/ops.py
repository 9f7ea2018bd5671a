"""Image operations behind the perturbation sequences (uint8 or float N x H x W x C batches).

Float images are in [0, 1]; :func:`to_uint8` clips, scales by 255 and rounds to nearest, so an
unperturbed float image converts back to exactly its uint8 source (the reference scripts truncate
instead). Geometric operations warp about the image centre ((W - 1) / 2, (H - 1) / 2) with
bilinear interpolation and fill uncovered pixels with black, through OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1]."""
    return images.astype(np.float64) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], scale by 255, round to nearest."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _centre(height: int, width: int) -> tuple[float, float]:
    return (width - 1) / 2.0, (height - 1) / 2.0


def _warp_each(images: np.ndarray, warp) -> np.ndarray:
    """Apply ``warp`` (H x W or H x W x C array -> same) to every image, keeping the C axis."""
    grey = images.shape[-1] == 1
    out = np.empty_like(images)
    for i, image in enumerate(images):
        result = warp(image[..., 0] if grey else image)
        out[i] = result[..., None] if grey else result
    return out


def affine(images: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp every image by the 2 x 3 forward ``matrix`` (source -> destination coordinates)."""
    _, h, w, _ = images.shape
    m = np.asarray(matrix, dtype=np.float64)
    return _warp_each(
        images,
        lambda im: cv2.warpAffine(
            im, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        ),
    )


def rotation_matrix(angle: float, height: int, width: int) -> np.ndarray:
    """Counter-clockwise rotation by ``angle`` degrees about the centre (2 x 3)."""
    cx, cy = _centre(height, width)
    return cv2.getRotationMatrix2D((cx, cy), float(angle), 1.0)


def scale_matrix(factor: float, height: int, width: int) -> np.ndarray:
    """Scaling by ``factor`` about the centre (2 x 3); < 1 zooms out, > 1 zooms in."""
    cx, cy = _centre(height, width)
    s = float(factor)
    return np.array([[s, 0.0, (1 - s) * cx], [0.0, s, (1 - s) * cy]])


def shear_matrix(angle: float, height: int, width: int) -> np.ndarray:
    """Horizontal shear x' = x + tan(angle) (y - cy), ``angle`` in degrees (2 x 3)."""
    _, cy = _centre(height, width)
    t = math.tan(math.radians(angle))
    return np.array([[1.0, t, -t * cy], [0.0, 1.0, 0.0]])


def translation_matrix(dx: float) -> np.ndarray:
    """Shift right by ``dx`` pixels (2 x 3)."""
    return np.array([[1.0, 0.0, float(dx)], [0.0, 1.0, 0.0]])


def tilt_homography(angle: float, height: int, width: int) -> np.ndarray:
    """Perspective view of the image plane turned by ``angle`` degrees about its x and y axes.

    The plane, centred on the optical axis at distance f = sqrt(W^2 + H^2), is rotated by
    R = Rx(angle) Ry(angle) and projected with focal length f onto the centre; angle 0 gives
    the identity. Returns the 3 x 3 forward homography.
    """
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    ry = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    r = rx @ ry
    f = math.hypot(width, height)
    cx, cy = _centre(height, width)
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
    plane = np.column_stack([r[:, 0], r[:, 1], [0.0, 0.0, f]])
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    h = k @ plane @ to_centre
    return h / h[2, 2]


def perspective(images: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Warp every image by the 3 x 3 forward ``homography``."""
    _, h, w, _ = images.shape
    m = np.asarray(homography, dtype=np.float64)
    return _warp_each(
        images,
        lambda im: cv2.warpPerspective(
            im, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        ),
    )


def brightness(x: np.ndarray, offset: float) -> np.ndarray:
    """Add ``offset`` to the HSV value (clipped to 1) keeping hue and saturation; grey: x + offset.

    HSV -> RGB is linear in V at fixed hue and saturation, so RGB scales by V_new / V; a black
    pixel (V = 0, saturation 0) becomes grey V_new.
    """
    v = x.max(axis=-1, keepdims=True)
    v_new = np.clip(v + offset, 0.0, 1.0)
    return np.where(v > 0, x * (v_new / np.where(v > 0, v, 1.0)), v_new)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over H and W with ``sigma`` px, truncated at 4 sigma, edge pixels repeated."""
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)


def box_kernel(length: float) -> np.ndarray:
    """Centred 1-D box of real ``length`` >= 1 px: weight k = overlap of [k - 1/2, k + 1/2] with
    [-length / 2, length / 2], normalised to sum 1 (length 1 is the identity)."""
    if length < 1:
        raise ValueError(f"box length must be >= 1 px, got {length}")
    radius = math.ceil((length - 1) / 2)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    lo = np.maximum(k - 0.5, -length / 2)
    hi = np.minimum(k + 0.5, length / 2)
    w = np.clip(hi - lo, 0.0, None)
    return w / w.sum()


def motion_blur(x: np.ndarray, length: float) -> np.ndarray:
    """Horizontal motion blur: correlate each row with :func:`box_kernel` (edges repeated)."""
    return ndimage.correlate1d(x, box_kernel(length), axis=2, mode="nearest")
