"""Perturbation sequences (ImageNet-P style), registered by name with one builder signature.

A builder takes ``(images, magnitudes, rngs)``: uint8 N x H x W x C images, the float64 per-frame
parameters of :func:`robustlab.noise.stability.tables.schedule` and one NumPy generator per image
(``None`` for deterministic kinds), and returns uint8 N x L x H x W x C.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from robustlab.noise.stability import ops
from robustlab.noise.stability.tables import TABLE, Parameters, schedule
from robustlab.registry import Registry

Generators = Sequence[np.random.Generator] | None
Builder = Callable[[np.ndarray, np.ndarray, Generators], np.ndarray]
FrameOp = Callable[[np.ndarray, float], np.ndarray]  # uint8 N x H x W x C, parameter -> uint8
NoiseDraw = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]  # float frames

CHUNK = 256  # images per builder call; results do not depend on it (one generator per image)


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation: its parameter table and its sequence builder."""

    name: str
    parameters: Parameters
    build: Builder

    @property
    def kind(self) -> str:
        return self.parameters.kind


perturbations: Registry[Perturbation] = Registry("perturbation")


def _register(name: str, build: Builder) -> None:
    perturbations.register(name)(Perturbation(name, TABLE[name], build))


def _noise_builder(draw: NoiseDraw) -> Builder:
    """Frame 0 clean, frames 1..L-1 independent draws of ``draw`` (same parameter)."""

    def build(images: np.ndarray, magnitudes: np.ndarray, rngs: Generators) -> np.ndarray:
        n, length = len(images), len(magnitudes)
        if rngs is None or len(rngs) != n:
            raise ValueError("a noise perturbation needs one generator per image")
        out = np.empty((n, length, *images.shape[1:]), np.uint8)
        out[:, 0] = images
        frames = np.broadcast_to(ops.to_float(images)[:, None], out[:, 1:].shape)
        for i in range(n):
            out[i, 1:] = ops.to_uint8(draw(frames[i], float(magnitudes[1]), rngs[i]))
        return out

    return build


def _frame_builder(op: FrameOp, identity: float | None) -> Builder:
    """Frame j = ``op(images, magnitudes[j])``; a magnitude equal to ``identity`` copies."""

    def build(images: np.ndarray, magnitudes: np.ndarray, rngs: Generators) -> np.ndarray:
        out = np.empty((len(images), len(magnitudes), *images.shape[1:]), np.uint8)
        for j, m in enumerate(magnitudes):
            out[:, j] = images if identity is not None and m == identity else op(images, float(m))
        return out

    return build


def _float_op(op: Callable[[np.ndarray, float], np.ndarray]) -> FrameOp:
    return lambda images, m: ops.to_uint8(op(ops.to_float(images), m))


def _geometric(matrix: Callable[[float, int, int], np.ndarray]) -> FrameOp:
    return lambda images, m: ops.affine(images, matrix(m, images.shape[1], images.shape[2]))


def _translate(images: np.ndarray, fraction: float) -> np.ndarray:
    return ops.affine(images, ops.translation_matrix(fraction * images.shape[2]))


def _tilt(images: np.ndarray, angle: float) -> np.ndarray:
    return ops.perspective(images, ops.tilt_homography(angle, images.shape[1], images.shape[2]))


def _zoom_blur(images: np.ndarray, magnitudes: np.ndarray, rngs: Generators) -> np.ndarray:
    """Frame j = mean of the image zoomed in by magnitudes[0..j] (ImageNet-P's running average)."""
    _, h, w, _ = images.shape
    out = np.empty((len(images), len(magnitudes), *images.shape[1:]), np.uint8)
    layer = images.astype(np.float32) / np.float32(255.0)
    total = np.zeros(images.shape, np.float64)
    for j, z in enumerate(magnitudes):
        zoomed = layer if z == 1.0 else ops.affine(layer, ops.scale_matrix(z, h, w))
        total += zoomed
        out[:, j] = images if j == 0 and z == 1.0 else ops.to_uint8(total / (j + 1))
    return out


def _gaussian(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(scale=sigma, size=x.shape)


def _shot(x: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(x * photons) / photons


def _speckle(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + x * rng.normal(scale=sigma, size=x.shape)


_register("gaussian_noise", _noise_builder(_gaussian))
_register("shot_noise", _noise_builder(_shot))
_register("speckle_noise", _noise_builder(_speckle))
_register("brightness", _frame_builder(_float_op(ops.brightness), identity=0.0))
_register("translate", _frame_builder(_translate, identity=0.0))
_register("rotate", _frame_builder(_geometric(ops.rotation_matrix), identity=0.0))
_register("tilt", _frame_builder(_tilt, identity=0.0))
_register("scale", _frame_builder(_geometric(ops.scale_matrix), identity=1.0))
_register("shear", _frame_builder(_geometric(ops.shear_matrix), identity=0.0))
_register("zoom_blur", _zoom_blur)
_register("gaussian_blur", _frame_builder(_float_op(ops.gaussian_blur), identity=None))
_register("motion_blur", _frame_builder(_float_op(ops.motion_blur), identity=1.0))


def perturbation_names() -> list[str]:
    """Registered perturbation names, sorted."""
    return perturbations.names()


def get_perturbation(name: str) -> Perturbation:
    """The perturbation called ``name``; an unknown name raises an error listing the known ones."""
    return perturbations.get(name)


def is_noise_perturbation(name: str) -> bool:
    """True for noise kinds, whose flip probability compares every frame with the clean frame 0."""
    return get_perturbation(name).kind == "noise"


def perturbation_schedule(name: str, length: int, height: int, width: int) -> np.ndarray:
    """The per-frame parameters of ``name`` for ``height`` x ``width`` images (NaN: clean frame)."""
    return schedule(get_perturbation(name).parameters, length, height, width)


def _check(images: np.ndarray) -> None:
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be uint8 N x H x W x C with C = 1 or 3, got {images.dtype} {images.shape}"
        )


def image_generator(seed: int, name: str, position: int) -> np.random.Generator:
    """The generator of the image at ``position``: independent of the other images and of
    chunking, so the first n images of a table get the same noise in any larger table."""
    entropy = [int(seed), zlib.crc32(name.encode())]
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(int(position),)))


def perturbation_sequence(name: str, images: np.ndarray, length: int, seed: int) -> np.ndarray:
    """Sequences of ``length`` frames of perturbation ``name``: uint8 N x L x H x W x C.

    Deterministic: equal images, length and seed give equal bytes. ``seed`` must be >= 0.
    """
    perturbation = get_perturbation(name)
    _check(images)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    magnitudes = schedule(perturbation.parameters, length, images.shape[1], images.shape[2])
    out = np.empty((len(images), len(magnitudes), *images.shape[1:]), np.uint8)
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK]
        rngs = None
        if perturbation.kind == "noise":
            rngs = [image_generator(seed, name, start + i) for i in range(len(chunk))]
        out[start : start + len(chunk)] = perturbation.build(chunk, magnitudes, rngs)
    return out
