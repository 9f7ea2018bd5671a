"""MNIST-C's affine corruptions: shear, rotate, scale and translate (optional extras).

Each maps output pixel p to input position A (p - centre) + centre (+ t), samples it bilinearly
and treats pixels outside the image as black, as MNIST-C's ``skimage.transform.warp`` does.
Matrices are those of MNIST-C's scikit-image (x = column, y = row): shear by c is
[[1, -sin c], [0, cos c]], rotation by c is [[cos c, -sin c], [sin c, cos c]], scale by s is
s I (an inverse map, so the content shrinks by 1 / s); shear and rotation get a random sign and
translation random signs in x and y, per image.
"""

from __future__ import annotations

import numpy as np

from robustlab.noise.natural import ops
from robustlab.noise.natural._base import corruptions, to_float, to_uint8
from robustlab.noise.natural.tables import param_for


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2, size=shape) * 2 - 1


def warp(images: np.ndarray, matrices: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
    """Warp uint8 images by per-image 2 x 2 inverse maps about the centre (+ shifts, px)."""
    _, h, w, _ = images.shape
    maps = np.stack([ops.centred_affine(m, h, w) for m in matrices])
    if shifts is not None:
        maps[:, :, 2] += shifts
    return to_uint8(ops.warp_affine(to_float(images), maps, "constant"))


def shear_matrices(angles: np.ndarray) -> np.ndarray:
    """MNIST-C's shear matrices [[1, -sin c], [0, cos c]] for each angle c (radians)."""
    m = np.zeros((len(angles), 2, 2))
    m[:, 0, 0] = 1
    m[:, 0, 1] = -np.sin(angles)
    m[:, 1, 1] = np.cos(angles)
    return m


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """[[cos c, -sin c], [sin c, cos c]] for each angle c (radians)."""
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


@corruptions.register("shear")
def shear(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shear by +-c radians about the image centre."""
    c = param_for("shear", images, severity)
    return warp(images, shear_matrices(c * _signs(rng, (len(images),))))


@corruptions.register("rotate")
def rotate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rotate by +-c radians about the image centre."""
    c = param_for("rotate", images, severity)
    return warp(images, rotation_matrices(c * _signs(rng, (len(images),))))


@corruptions.register("scale")
def scale(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shrink the content by 1 / s about the centre (s > 1), black around it."""
    s = param_for("scale", images, severity)
    return warp(images, np.repeat(np.eye(2)[None] * s, len(images), axis=0))


@corruptions.register("translate")
def translate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shift by c px in x and in y, each with a random sign."""
    c = param_for("translate", images, severity)
    shifts = c * _signs(rng, (len(images), 2)).astype(np.float64)
    return warp(images, np.repeat(np.eye(2)[None], len(images), axis=0), shifts)
