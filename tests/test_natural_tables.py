"""Parameter tables: CIFAR-10-C's and ImageNet-C's published values, written out independently."""

from __future__ import annotations

import numpy as np
import pytest

from robustlab.noise.natural import TABLES, corruption_names, parameter
from robustlab.noise.natural.blur import zoom_factors

# make_cifar_c.py (hendrycks/robustness, ImageNet-C/create_c), one tuple per severity 1-5
CIFAR_10_C = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "snow": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ],
    "spatter": [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
    "jpeg_compression": [80, 65, 58, 50, 40],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    # IMSIZE = 32: (IMSIZE * 0, IMSIZE * 0, IMSIZE * 0.08), ...
    "elastic_transform": [
        (0, 0, 2.56),
        (1.6, 6.4, 2.24),
        (2.56, 1.92, 1.92),
        (3.2, 1.28, 1.6),
        (3.2, 0.96, 0.96),
    ],
}
# np.arange(1, stop, 0.01) for stop 1.06, 1.11, 1.16, 1.21, 1.26. Float rounding makes
# (stop - 1) / step slightly above 6 and 11, so the first two also contain their stop value.
CIFAR_ZOOM = [[1 + k / 100 for k in range(n)] for n in (7, 12, 16, 21, 26)]

# make_imagenet_c.py
IMAGENET_C = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "shot_noise": [60, 25, 12, 5, 3],
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
    "speckle_noise": [0.15, 0.2, 0.35, 0.45, 0.6],
    "gaussian_blur": [1, 2, 3, 4, 6],
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    "fog": [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    "snow": [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
    "spatter": [
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
    "jpeg_compression": [25, 18, 15, 10, 7],
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
    # (244 * 2, 244 * 0.7, 244 * 0.1), ... (244, not 224, in the script)
    "elastic_transform": [
        (488, 170.8, 24.4),
        (488, 19.52, 48.8),
        (12.2, 2.44, 4.88),
        (17.08, 2.44, 4.88),
        (29.28, 2.44, 4.88),
    ],
}
IMAGENET_ZOOM = [  # arange(1, 1.11, .01) holds 1.11 too (see above)
    [1 + k / 100 for k in range(12)],
    [1 + k / 100 for k in range(16)],
    [1 + 2 * k / 100 for k in range(11)],
    [1 + 2 * k / 100 for k in range(13)],
    [1 + 3 * k / 100 for k in range(11)],
]

# MNIST-C (google-research/mnist-c corruptions.py): its affine corruptions' ladders
MNIST_C_AFFINE = {
    "shear": [0.2, 0.4, 0.6, 0.8, 1.0],
    "rotate": [0.2, 0.4, 0.6, 0.8, 1.0],
    "scale": [1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5],
    "translate": [1, 2, 3, 4, 5],
}


def _flat(value) -> list[float]:
    return [float(v) for v in np.ravel(np.asarray(value, dtype=np.float64))]


@pytest.mark.parametrize(
    ("side", "published", "zoom"),
    [(32, CIFAR_10_C, CIFAR_ZOOM), (224, IMAGENET_C, IMAGENET_ZOOM)],
    ids=["cifar-10-c", "imagenet-c"],
)
def test_table_equals_published_values(side: int, published: dict, zoom: list) -> None:
    for name, values in published.items():
        for severity, expected in enumerate(values, start=1):
            got = parameter(name, severity, side, side)
            assert _flat(got) == pytest.approx(_flat(expected), rel=1e-12), (name, severity)
    for severity, expected in enumerate(zoom, start=1):
        stop, step = parameter("zoom_blur", severity, side, side)
        np.testing.assert_allclose(zoom_factors(stop, step), expected, rtol=0, atol=1e-12)


def test_tables_cover_every_corruption() -> None:
    for table in TABLES.values():
        assert sorted(table) == corruption_names()
        assert all(len(values) == 5 for values in table.values())


def test_affine_ladders_are_mnist_c() -> None:
    for name, values in MNIST_C_AFFINE.items():
        for severity, expected in enumerate(values, start=1):
            assert parameter(name, severity, 28, 28) == pytest.approx(expected)
            if name != "translate":
                assert parameter(name, severity, 224, 224) == pytest.approx(expected)
    assert [parameter("translate", s, 32, 32) for s in range(1, 6)] == [1, 2, 3, 5, 6]
    assert [parameter("translate", s, 224, 224) for s in range(1, 6)] == [8, 16, 24, 32, 40]


def test_tiny_table_uses_mnist_c_values_at_severity_5() -> None:
    """MNIST-C's chosen parameter for its own corruptions is the tiny table's severity 5."""
    mnist_c = {
        "shot_noise": 3,  # severity 5 of ImageNet-C's ladder
        "impulse_noise": 0.17,  # severity 4
        "glass_blur": (0.7, 1, 2),  # severity 1
        "motion_blur": (10, 3),  # severity 1
        "fog": (3, 1.4),  # severity 5
        "brightness": 0.5,  # severity 5
        "spatter": (0.65, 0.3, 1, 0.65, 1.5, 1),  # severity 4
    }
    for name, value in mnist_c.items():
        assert _flat(parameter(name, 5, 28, 28)) == pytest.approx(_flat(value)), name


def test_tiny_ladders_grow_monotonically() -> None:
    """Each tiny-table parameter moves one way from severity 1 to 5 (strength never drops)."""
    grows = {"gaussian_noise", "impulse_noise", "brightness", "speckle_noise", "gaussian_blur"}
    shrinks = {"shot_noise", "contrast", "pixelate", "jpeg_compression"}
    tiny = TABLES["tiny"]
    for name in grows:
        assert all(a < b for a, b in zip(tiny[name], tiny[name][1:], strict=False)), name
    for name in shrinks:
        assert all(a > b for a, b in zip(tiny[name], tiny[name][1:], strict=False)), name


def _cell(value, name: str) -> str:
    """A table value as docs/corruptions.md writes it."""
    if name == "zoom_blur":
        factors = zoom_factors(*value)
        return f"1.00-{factors[-1]:.2f} / {value.step:g} ({len(factors)})"
    if isinstance(value, tuple):
        return "(" + ", ".join(_cell(v, "") for v in value) + ")"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def test_docs_list_every_parameter(repo_root) -> None:
    """docs/corruptions.md shows each table as it is in the code (update the docs with it)."""
    text = (repo_root / "docs" / "corruptions.md").read_text()
    for name in corruption_names():
        section = text.split(f"#### `{name}`", 1)
        assert len(section) == 2, f"docs/corruptions.md has no section for {name}"
        lines = section[1].split("####", 1)[0].splitlines()
        for table, values in TABLES.items():
            expected = f"| {table} | " + " | ".join(_cell(v, name) for v in values[name]) + " |"
            assert expected in lines, f"docs/corruptions.md, {name}: expected row {expected}"
