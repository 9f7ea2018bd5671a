"""Parameter tables of the perturbation sequences, one per image-size class.

Each perturbation has a ``kind``:

- ``"noise"``: frame 0 is the clean image and frames 1..L-1 are independent noise draws around it,
  all at the same parameter (ImageNet-P's noise videos: ``img0`` clean, then 30 noisy frames);
- ``"schedule"``: frame j applies parameter ``start + (end - start) * j / (L - 1)``, a monotone
  path; frame 0 is the identity (``start`` is the identity value) or, for gaussian_blur, the
  least perturbed frame.

Values come from Hendrycks & Dietterich's ``make_cifar_p.py`` ("small") and
``make_imagenet_p.py`` ("large"). ImageNet-P sweeps most geometric parameters symmetrically
through the identity (rotate -15..15 degrees); a schedule here keeps the half from the identity
to one end of that sweep, resampled to L frames, so every sequence starts unperturbed and its
distortion grows. See docs/stability_system.md for the table with units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMALL_MAX = 64  # both sides <= 64 px: CIFAR-P values (28 px Fashion-MNIST, 32 px CIFAR)
LARGE_MIN = 224  # both sides >= 224 px: ImageNet-P values
KINDS = ("noise", "schedule")


@dataclass(frozen=True)
class Parameters:
    """Kind, unit and (start, end) parameter of one perturbation per size class.

    For noise perturbations start == end: the parameter of every noisy frame.
    """

    kind: str
    unit: str
    small: tuple[float, float]
    large: tuple[float, float]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


def _noise(unit: str, small: float, large: float) -> Parameters:
    return Parameters("noise", unit, (small, small), (large, large))


TABLE: dict[str, Parameters] = {
    "gaussian_noise": _noise("sigma of x + N(0, sigma^2), x in [0, 1]", 0.02, 0.03),
    "shot_noise": _noise("photons c of Poisson(c x) / c", 700.0, 300.0),
    "speckle_noise": _noise("sigma of x + x N(0, sigma^2)", 0.05, 0.05),
    "brightness": Parameters("schedule", "added to HSV value", (0.0, 0.225), (0.0, 0.3)),
    "translate": Parameters(
        "schedule", "shift right, fraction of width", (0.0, 0.25), (0.0, 20 / 224)
    ),
    "rotate": Parameters("schedule", "degrees counter-clockwise", (0.0, 15.0), (0.0, 15.0)),
    "tilt": Parameters("schedule", "degrees about both axes", (0.0, 11.25), (0.0, 15.0)),
    "scale": Parameters("schedule", "zoom factor (< 1 zooms out)", (1.0, 0.7), (1.0, 0.4)),
    "shear": Parameters("schedule", "horizontal shear, degrees", (0.0, 15.0), (0.0, 15.0)),
    "zoom_blur": Parameters("schedule", "zoom of the newest layer", (1.0, 1.12), (1.0, 1.12)),
    "gaussian_blur": Parameters("schedule", "sigma in px", (0.3, 0.75), (0.25, 1.3)),
    "motion_blur": Parameters("schedule", "horizontal box length in px", (1.0, 4.0), (1.0, 6.0)),
}


def size_class(height: int, width: int) -> str:
    """``"small"`` for images with both sides <= 64 px, ``"large"`` for both sides >= 224 px."""
    if max(height, width) <= SMALL_MAX:
        return "small"
    if min(height, width) >= LARGE_MIN:
        return "large"
    raise ValueError(
        f"no perturbation parameter table for {height}x{width} images: tables exist for sides "
        f"<= {SMALL_MAX} px (CIFAR-P) and >= {LARGE_MIN} px (ImageNet-P); resize the images or "
        "add a table in robustlab/noise/stability/tables.py"
    )


def schedule(params: Parameters, length: int, height: int, width: int) -> np.ndarray:
    """Per-frame parameters (float64, ``length`` entries) for ``height`` x ``width`` images.

    Noise kinds give NaN for frame 0 (the clean image) and the noise parameter for the others.
    """
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 2:
        raise ValueError(
            f"length must be an integer >= 2 (frame pairs are compared), got {length!r}"
        )
    start, end = params.small if size_class(height, width) == "small" else params.large
    if params.kind == "noise":
        values = np.full(int(length), float(start))
        values[0] = np.nan
        return values
    return start + (end - start) * np.arange(length, dtype=np.float64) / (length - 1)
