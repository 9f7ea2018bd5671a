"""Faithfulness to ImageNet-C at 224 px, against imagecorruptions-imaug (a test-only dependency).

Deterministic corruptions must match the fork to within 1 grey level. Random ones whose random
draws can be replayed (fog, motion blur, snow, spatter; elastic's warp) are fed the fork's draws
through a ``np.random.RandomState`` and must match to within 1 grey level too. The others
(noise, glass blur) must match the fork's statistics within their sampling error, and the
procedural frost textures the colour and sharpness statistics of the fork's photographs.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

ic = pytest.importorskip("imagecorruptions")
skdata = pytest.importorskip("skimage.data")
skfilters = pytest.importorskip("skimage.filters")

from PIL import Image  # noqa: E402
from scipy.ndimage import map_coordinates  # noqa: E402

from robustlab.noise.natural import apply_corruption, ops, tables, textures  # noqa: E402
from robustlab.noise.natural._base import to_uint8  # noqa: E402
from robustlab.noise.natural.digital import elastic_apply, elastic_draws  # noqa: E402
from robustlab.noise.natural.extra import liquid_layer, spatter_on  # noqa: E402
from robustlab.noise.natural.weather import fog_on, snow_layer, snow_on  # noqa: E402

LARGE = tables.LARGE


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Three natural 224 x 224 RGB photographs (centre square, bicubic resize)."""
    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        im = Image.fromarray(getattr(skdata, name)())
        w, h = im.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        out.append(np.asarray(im.crop(box).resize((224, 224), Image.Resampling.BICUBIC)))
    return np.stack(out)


def fork(name: str, image: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """The fork's corruption, seeded (glass and impulse take their own seed, else they draw
    from the OS)."""
    np.random.seed(seed)
    kwargs = {"seed": seed} if name in ("glass_blur", "impulse_noise") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ic.corrupt(image, severity, name, **kwargs)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


DETERMINISTIC = [
    "defocus_blur", "zoom_blur", "brightness", "contrast", "saturate", "pixelate",
    "jpeg_compression", "gaussian_blur",
]  # fmt: skip


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_match_within_one_level(photos, name: str) -> None:
    for severity in range(1, 6):
        ours = apply_corruption(name, photos, severity, seed=0)
        for i, photo in enumerate(photos):
            assert max_diff(ours[i], fork(name, photo, severity, 0)) <= 1, (name, severity, i)


def test_fog_with_the_forks_fractal(photos) -> None:
    for severity in range(1, 6):
        strength, decay = LARGE["fog"][severity - 1]
        for i, photo in enumerate(photos):
            seed = 10 * severity + i
            plasma = textures.plasma_fractal(np.random.RandomState(seed), 1, 256, decay)
            ours = fog_on(photo[None], plasma[:, :224, :224], strength)[0]
            assert max_diff(ours, fork("fog", photo, severity, seed)) <= 1, (severity, i)


def test_motion_blur_with_the_forks_angle(photos) -> None:
    for severity in range(1, 6):
        radius, sigma = LARGE["motion_blur"][severity - 1]
        for i, photo in enumerate(photos):
            seed = 10 * severity + i
            angle = np.random.RandomState(seed).uniform(-45, 45, size=1)
            blurred = ops.motion_blur(photo[None].astype(np.float32), angle, radius, sigma)
            ours = to_uint8(blurred, scale=1.0)[0]
            assert max_diff(ours, fork("motion_blur", photo, severity, seed)) <= 1, (severity, i)


def test_snow_with_the_forks_draws(photos) -> None:
    for severity in range(1, 6):
        p = LARGE["snow"][severity - 1]
        for i, photo in enumerate(photos):
            seed = 10 * severity + i
            layer = snow_layer(np.random.RandomState(seed), 1, 224, 224, p)
            ours = snow_on(photo[None], layer, p)[0]
            assert max_diff(ours, fork("snow", photo, severity, seed)) <= 1, (severity, i)


def test_spatter_with_the_forks_draws(photos) -> None:
    for severity in range(1, 6):  # 1-3 water, 4-5 mud
        p = LARGE["spatter"][severity - 1]
        for i, photo in enumerate(photos):
            seed = 10 * severity + i
            layer = liquid_layer(np.random.RandomState(seed), 1, 224, 224, p)
            ours = spatter_on(photo[None], layer, p)[0]
            assert max_diff(ours, fork("spatter", photo, severity, seed)) <= 1, (severity, i)


def test_elastic_warp_with_the_forks_field(photos) -> None:
    """The fork's elastic is its own resolution-relative variant (no affine step): feeding our
    resampling its displacement field must reproduce it."""
    for severity in range(1, 6):
        alpha = 250 * (0.05, 0.065, 0.085, 0.1, 0.12)[severity - 1]
        for i, photo in enumerate(photos):
            seed = 10 * severity + i
            rs = np.random.RandomState(seed)
            fields = []
            for _ in range(2):
                u = rs.uniform(-224 * 0.005, 224 * 0.005, size=(224, 224))
                g = skfilters.gaussian(u, np.array([2.24, 2.24]), mode="reflect", truncate=3)
                fields.append((g * alpha).astype(np.float32)[None])
            ours = elastic_apply(photo[None], None, *fields)[0]
            expected = fork("elastic_transform", photo, severity, seed)
            assert max_diff(ours, expected) <= 1, (severity, i)


def test_elastic_follows_make_imagenet_c(photos) -> None:
    """Our elastic transform equals make_imagenet_c.py's steps (OpenCV affine with reflected
    borders, skimage-smoothed fields, scipy map_coordinates) given the same draws."""
    for severity in range(1, 6):
        p = LARGE["elastic_transform"][severity - 1]
        photo = photos[severity % 3]
        maps, dx, dy = elastic_draws(np.random.RandomState(severity), 1, 224, 224, p)
        ours = elastic_apply(photo[None], maps, dx, dy)[0]

        rs = np.random.RandomState(severity)
        image = photo.astype(np.float32) / 255
        centre, size = np.float32([224, 224]) // 2, 224 // 3
        src = np.float32([centre + size, [centre[0] + size, centre[1] - size], centre - size])
        dst = src + rs.uniform(-p.affine, p.affine, size=src.shape).astype(np.float32)
        warped = cv2.warpAffine(
            image, cv2.getAffineTransform(src, dst), (224, 224), borderMode=cv2.BORDER_REFLECT_101
        )
        shifts = [
            (
                skfilters.gaussian(
                    rs.uniform(-1, 1, (224, 224)), p.sigma, mode="reflect", truncate=3
                )
                * p.alpha
            ).astype(np.float32)
            for _ in range(2)
        ]
        yy, xx = np.meshgrid(np.arange(224), np.arange(224), indexing="ij")
        expected = np.stack(
            [
                map_coordinates(
                    warped[..., c], [yy + shifts[1], xx + shifts[0]], order=1, mode="reflect"
                )
                for c in range(3)
            ],
            axis=-1,
        )
        expected = (np.clip(expected, 0, 1) * 255).astype(np.uint8)
        assert max_diff(ours, expected) <= 1, severity


def _stats(outs: list[np.ndarray], clean: np.ndarray) -> np.ndarray:
    """Per run: mean |diff| of each photo, std of the difference image, share of changed values."""
    rows = []
    for out in outs:
        diff = out.astype(np.float64) - clean
        mad = np.abs(diff).mean(axis=(1, 2, 3))
        rows.append([*mad, diff.std(), (diff != 0).mean()])
    return np.array(rows)


@pytest.mark.parametrize(
    ("name", "severities"),
    [
        ("gaussian_noise", (1, 5)),
        ("shot_noise", (1, 5)),
        ("impulse_noise", (1, 5)),
        ("speckle_noise", (1, 5)),
        ("glass_blur", (1, 5)),
    ],
)
def test_random_corruptions_match_the_forks_statistics(photos, name, severities) -> None:
    """Mean |diff| per photo, std of the difference and share of changed values agree with the
    fork within 4 standard errors of the difference of two means over 3 runs each (plus 0.3 %
    for float rounding)."""
    runs = 3
    for severity in severities:
        ours = _stats([apply_corruption(name, photos, severity, s) for s in range(runs)], photos)
        theirs = _stats(
            [np.stack([fork(name, p, severity, 100 + s) for p in photos]) for s in range(runs)],
            photos,
        )
        se = np.sqrt((ours.var(axis=0, ddof=1) + theirs.var(axis=0, ddof=1)) / runs)
        gap = np.abs(ours.mean(axis=0) - theirs.mean(axis=0))
        tolerance = 4 * se + 0.003 * np.abs(theirs.mean(axis=0)) + 1e-4
        assert (gap <= tolerance).all(), (name, severity, gap, tolerance)


def _gradient(image: np.ndarray) -> float:
    g = image.astype(np.float64)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def test_frost_textures_match_the_photographs() -> None:
    """Each synthetic texture has its photograph's colour statistics (mean within 2 levels,
    std within 10 %) and sharpness (mean neighbour difference within 20 %), at full size and
    at CIFAR-10-C's 0.2 scale (OpenCV's default bilinear resize, as in make_cifar_c.py)."""
    from importlib.resources import files

    folder = files("imagecorruptions") / "frost"
    names = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"]
    for index, name in enumerate(names):
        photo = cv2.imread(str(folder / name))[..., ::-1]
        ours = textures.frost_texture(index)
        assert ours.shape == photo.shape, name
        for scale in (1.0, 0.2):
            a = photo if scale == 1 else cv2.resize(photo, (0, 0), fx=scale, fy=scale)
            b = ours if scale == 1 else textures.frost_bank(scale, 32, 32)[index]
            a_px, b_px = a.reshape(-1, 3).astype(np.float64), b.reshape(-1, 3).astype(np.float64)
            np.testing.assert_allclose(b_px.mean(0), a_px.mean(0), atol=2, err_msg=name)
            np.testing.assert_allclose(b_px.std(0), a_px.std(0), rtol=0.1, err_msg=name)
            assert _gradient(b) == pytest.approx(_gradient(a), rel=0.2), (name, scale)


def test_frost_blend_is_the_references(photos) -> None:
    """frost = clip(c0 x + c1 crop, 0, 255) on the 0-255 scale, truncated, for a replayed crop."""
    for severity in (1, 5):
        c0, c1 = LARGE["frost"][severity - 1]
        out = apply_corruption("frost", photos, severity, seed=4)
        rng = np.random.default_rng(4)
        bank = textures.frost_bank(1.0, 224, 224)
        choice = rng.integers(len(bank), size=3)
        for i, k in enumerate(choice):
            top = int(rng.integers(bank[k].shape[0] - 224))
            left = int(rng.integers(bank[k].shape[1] - 224))
            crop = bank[k][top : top + 224, left : left + 224].astype(np.float64)
            expected = np.clip(c0 * photos[i].astype(np.float64) + c1 * crop, 0, 255)
            assert max_diff(out[i], expected.astype(np.uint8)) <= 1, (severity, i)
