"""Natural corruptions (robustlab.noise.natural) and the corrupt stage."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise import natural
from robustlab.noise.natural import (
    apply_corruption,
    corruption_names,
    corruption_seed,
    get_corruption,
    resolution_class,
)
from robustlab.registry import UnknownNameError
from stages import corrupt as corrupt_stage

torch.set_num_threads(1)

REQUIRED = ["contrast", "defocus_blur", "gaussian_noise", "jpeg_compression"]


def randomish(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth gradient plus texture, away from nothing in particular."""
    n, h, w, c = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = 60 + 120 * (0.5 * yy + 0.5 * xx)[None, :, :, None] * np.ones(shape)
    noise = np.random.default_rng(seed).integers(-60, 61, size=shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_registry_names() -> None:
    names = corruption_names()
    assert set(REQUIRED) <= set(names)
    assert names == sorted(names)
    assert get_corruption("contrast") is natural.contrast


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_corruption("fog")
    message = str(err.value)
    assert "unknown corruption 'fog'" in message
    for name in REQUIRED:
        assert name in message
    with pytest.raises(KeyError):
        apply_corruption("fog", np.zeros((1, 8, 8, 1), np.uint8), 1, 0)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True])
def test_bad_severity(severity: object) -> None:
    images = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="severity must be"):
        apply_corruption("gaussian_noise", images, severity, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="severity must be"):
        natural.contrast(images, severity, np.random.default_rng(0))  # type: ignore[arg-type]


def test_bad_images() -> None:
    with pytest.raises(ValueError, match="uint8 N x H x W x C"):
        apply_corruption("contrast", np.zeros((1, 8, 8, 3), np.float32), 1, 0)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        apply_corruption("contrast", np.zeros((1, 8, 8, 2), np.uint8), 1, 0)


def test_resolution_class() -> None:
    assert resolution_class(28, 28) == "small"
    assert resolution_class(32, 32) == "small"
    assert resolution_class(64, 48) == "small"
    assert resolution_class(224, 224) == "large"
    assert resolution_class(256, 320) == "large"
    for h, w in [(65, 65), (100, 100), (32, 224), (223, 300)]:
        with pytest.raises(ValueError, match="no corruption parameter table"):
            resolution_class(h, w)
    with pytest.raises(ValueError, match="no corruption parameter table"):
        apply_corruption("contrast", np.zeros((1, 96, 96, 3), np.uint8), 1, 0)


def test_tables_by_class() -> None:
    assert natural.parameter("gaussian_noise", 1, 32, 32) == 0.04
    assert natural.parameter("gaussian_noise", 5, 28, 28) == 0.10
    assert natural.parameter("gaussian_noise", 5, 224, 224) == 0.38
    assert natural.parameter("defocus_blur", 4, 32, 32) == (1, 0.2)
    assert natural.parameter("defocus_blur", 1, 224, 224) == (3, 0.1)
    assert natural.parameter("jpeg_compression", 3, 32, 32) == 58
    assert natural.parameter("jpeg_compression", 3, 224, 224) == 15
    assert natural.parameter("contrast", 5, 32, 32) == 0.15
    assert natural.parameter("contrast", 5, 224, 224) == 0.05
    for table in natural.TABLES.values():
        assert set(table) == set(corruption_names())
        assert all(len(values) == 5 for values in table.values())


def test_contrast_hand_computed_grey() -> None:
    # mean = (0 + 100 + 200 + 255) / 4 = 138.75; severity 1 (small) c = 0.75:
    # (v - 138.75) * 0.75 + 138.75 -> 34.6875, 109.6875, 184.6875, 225.9375 -> truncated
    x = np.array([[0, 100], [200, 255]], np.uint8).reshape(1, 2, 2, 1)
    out = apply_corruption("contrast", x, 1, seed=0)
    assert out.dtype == np.uint8 and out.shape == x.shape
    np.testing.assert_array_equal(out[0, :, :, 0], [[34, 109], [184, 225]])


def test_contrast_hand_computed_rgb_per_channel_mean() -> None:
    x = np.zeros((1, 2, 2, 3), np.uint8)
    x[0, :, :, 0] = [[0, 100], [200, 255]]  # mean 138.75
    x[0, :, :, 1] = 50  # constant: unchanged
    x[0, :, :, 2] = [[10, 20], [30, 40]]  # mean 25 -> 13.75, 21.25, 28.75, 36.25
    out = apply_corruption("contrast", x, 1, seed=0)
    np.testing.assert_array_equal(out[0, :, :, 0], [[34, 109], [184, 225]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[50, 50], [50, 50]])
    np.testing.assert_array_equal(out[0, :, :, 2], [[13, 21], [28, 36]])
    # severity 5, c = 0.15: (0 - 138.75) * 0.15 + 138.75 = 117.9375
    assert apply_corruption("contrast", x, 5, seed=0)[0, 0, 0, 0] == 117


def test_gaussian_noise_deterministic() -> None:
    x = randomish((4, 32, 32, 3))
    a = apply_corruption("gaussian_noise", x, 3, seed=7)
    b = apply_corruption("gaussian_noise", x, 3, seed=7)
    c = apply_corruption("gaussian_noise", x, 3, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(
        natural.gaussian_noise(x, 3, rng_a), natural.gaussian_noise(x, 3, rng_b)
    )


@pytest.mark.parametrize(
    ("shape", "sigmas"),
    [
        ((12, 64, 64, 1), [0.04, 0.06, 0.08, 0.09, 0.10]),
        ((1, 224, 224, 1), [0.08, 0.12, 0.18, 0.26, 0.38]),
    ],
)
def test_gaussian_noise_sigma(shape: tuple[int, ...], sigmas: list[float]) -> None:
    x = np.full(shape, 128, np.uint8)
    for severity, sigma in enumerate(sigmas, start=1):
        if 128 - 3.5 * sigma * 255 < 0:  # clipping would shrink the spread
            continue
        out = apply_corruption("gaussian_noise", x, severity, seed=severity).astype(np.float64)
        # truncation adds uniform quantisation noise (variance 1/12) and shifts the mean by -0.5
        expected = np.sqrt((sigma * 255) ** 2 + 1 / 12)
        assert out.std() == pytest.approx(expected, rel=0.02)
        assert out.mean() == pytest.approx(127.5, abs=0.5)


def test_shot_noise_variance() -> None:
    x = np.full((12, 64, 64, 1), 128, np.uint8)
    out = apply_corruption("shot_noise", x, 5, seed=0).astype(np.float64)  # c = 50
    expected = 255 * np.sqrt((128 / 255) / 50)
    assert out.std() == pytest.approx(expected, rel=0.03)


def test_impulse_noise_fractions() -> None:
    x = np.full((12, 64, 64, 3), 128, np.uint8)
    out = apply_corruption("impulse_noise", x, 5, seed=0)  # amount 0.07
    assert set(np.unique(out)) == {0, 128, 255}
    assert (out == 255).mean() == pytest.approx(0.035, abs=0.003)
    assert (out == 0).mean() == pytest.approx(0.035, abs=0.003)


def test_brightness_hand_computed() -> None:
    # severity 1 (small) adds 0.05 to the HSV value, i.e. 12.75 grey levels at the brightest channel
    grey = np.array([[100, 250]], np.uint8).reshape(1, 1, 2, 1)
    np.testing.assert_array_equal(apply_corruption("brightness", grey, 1, 0).ravel(), [112, 255])
    rgb = np.array([[[200, 100, 0], [0, 0, 0]]], np.uint8).reshape(1, 1, 2, 3)
    # scale by (200 + 12.75) / 200 keeps hue and saturation: 212.75, 106.375, 0; black -> grey
    out = apply_corruption("brightness", rgb, 1, 0)
    np.testing.assert_array_equal(out[0, 0], [[212, 106, 0], [12, 12, 12]])


def test_pixelate_hand_computed() -> None:
    # severity 5 (small): int(4 * 0.65) = 2, so each 2 x 2 block becomes its mean
    block = np.array([[0, 0, 10, 20], [0, 0, 30, 40], [7, 7, 100, 100], [7, 7, 100, 100]], np.uint8)
    out = apply_corruption("pixelate", block.reshape(1, 4, 4, 1), 5, 0)[0, :, :, 0]
    expected = [[0, 0, 25, 25], [0, 0, 25, 25], [7, 7, 100, 100], [7, 7, 100, 100]]
    np.testing.assert_array_equal(out, expected)


def pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_matches_pil(channels: int) -> None:
    x = randomish((2, 32, 32, channels))
    for severity, quality in enumerate([80, 65, 58, 50, 40], start=1):
        out = apply_corruption("jpeg_compression", x, severity, seed=0)
        for i in range(len(x)):
            image = x[i, :, :, 0] if channels == 1 else x[i]
            expected = pil_jpeg(image, quality).reshape(x.shape[1:])
            np.testing.assert_array_equal(out[i], expected)
    big = randomish((1, 224, 224, 3))
    np.testing.assert_array_equal(
        apply_corruption("jpeg_compression", big, 5, 0)[0], pil_jpeg(big[0], 7)
    )


def test_defocus_keeps_constant_image() -> None:
    for shape in [(2, 28, 28, 1), (2, 32, 32, 3)]:
        x = np.full(shape, 100, np.uint8)
        for severity in range(1, 6):
            np.testing.assert_array_equal(apply_corruption("defocus_blur", x, severity, 0), x)
    big = np.full((1, 224, 224, 1), 77, np.uint8)  # radius 10: kernel touches its border
    np.testing.assert_array_equal(apply_corruption("defocus_blur", big, 5, 0), big)


def test_defocus_impulse_becomes_disk() -> None:
    x = np.zeros((1, 32, 32, 1), np.uint8)
    x[0, 16, 16, 0] = 255
    # severity 5 (small): radius 1.5 covers the 3 x 3 block (dist^2 <= 2.25), alias sigma 0.1
    # is negligible: each pixel gets 255 / 9 = 28.33 -> 28
    out = apply_corruption("defocus_blur", x, 5, 0)[0, :, :, 0]
    expected = np.zeros((32, 32), np.uint8)
    expected[15:18, 15:18] = 28
    np.testing.assert_array_equal(out, expected)
    # the sum is preserved before rounding, for every kernel of both tables
    for table in natural.TABLES.values():
        for radius, alias in table["defocus_blur"]:
            f = np.zeros((1, 48, 48, 1))
            f[0, 24, 24, 0] = 1.0
            blurred = natural._defocus_float(f, radius, alias)
            assert blurred.sum() == pytest.approx(1.0, abs=1e-12)
            assert blurred.max() < 1.0
            assert blurred[0, :, :, 0] == pytest.approx(blurred[0, :, :, 0].T, abs=1e-15)
    # severity 4: radius 1 is a 5-pixel cross of 255 * 0.2 = 51 each; the sigma-0.2 alias blur
    # moves exp(-12.5) / (1 + 2 exp(-12.5)) of each pixel to each side neighbour: the centre gets
    # back what it gives (51), each arm loses ~6e-4 to the diagonals and beyond (-> 50)
    out = apply_corruption("defocus_blur", x, 4, 0)[0, :, :, 0]
    expected = np.zeros((32, 32), np.uint8)
    expected[15:18, 16] = expected[16, 15:18] = 50
    expected[16, 16] = 51
    np.testing.assert_array_equal(out, expected)
    # in general truncation loses sum(min(1, value)) grey levels at most
    for severity, (radius, alias) in enumerate(natural.TABLES["small"]["defocus_blur"], start=1):
        out = apply_corruption("defocus_blur", x, severity, 0)
        exact = natural._defocus_float(x / 255.0, radius, alias) * 255
        assert 0 <= 255 - int(out.sum()) <= np.minimum(exact, 1.0).sum() + 1e-9


def test_defocus_grey_equals_rgb_channel() -> None:
    grey = randomish((2, 32, 32, 1))
    rgb = np.repeat(grey, 3, axis=-1)
    for severity in (1, 4):
        a = apply_corruption("defocus_blur", grey, severity, 0)
        b = apply_corruption("defocus_blur", rgb, severity, 0)
        for ch in range(3):
            np.testing.assert_array_equal(b[..., ch], a[..., 0])


@pytest.mark.parametrize("shape", [(4, 32, 32, 3), (4, 28, 28, 1)])
def test_severity_monotone(shape: tuple[int, ...]) -> None:
    x = randomish(shape, seed=1)
    for name in corruption_names():
        changes = [
            np.abs(apply_corruption(name, x, s, seed=3).astype(np.float64) - x).mean()
            for s in range(1, 6)
        ]
        assert changes[0] > 0, name
        assert all(a < b for a, b in zip(changes, changes[1:], strict=False)), (name, changes)


def test_shape_dtype_all() -> None:
    for shape in [(3, 28, 28, 1), (3, 32, 32, 3)]:
        x = randomish(shape)
        for name in corruption_names():
            out = apply_corruption(name, x, 2, seed=0)
            assert out.shape == x.shape and out.dtype == np.uint8, name
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    assert apply_corruption("gaussian_noise", empty, 1, 0).shape == empty.shape


def test_corruption_seed_is_stable() -> None:
    assert corruption_seed(0, "gaussian_noise", 1) == 3800568186
    assert corruption_seed(0, "gaussian_noise", 2) != corruption_seed(0, "gaussian_noise", 1)
    assert corruption_seed(1, "gaussian_noise", 1) != corruption_seed(0, "gaussian_noise", 1)


def test_corrupt_stage(tmp_path) -> None:
    rng = np.random.default_rng(0)
    clean = ImageSet(
        images=rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8),
        labels=np.array([1, 0, 2], np.int16),
        index=np.array([5, 2, 9], np.int64),
        class_names=["a", "b", "c"],
        source_checksum="abc123",
    )
    src = tmp_path / "test.parquet"
    write_images(clean, src)
    out = tmp_path / "noisy" / "gaussian_noise.parquet"
    argv = ["--input", str(src), "--corruption", "gaussian_noise", "--seed", "4", "--no-progress"]
    corrupt_stage.main([*argv, "--severities", "1", "2", "3", "4", "5", "--out", str(out)])

    table = pq.read_table(out)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["height"] == "8" and meta["width"] == "8" and meta["channels"] == "3"
    assert meta["class_names"] == '["a", "b", "c"]' and meta["source_checksum"] == "abc123"
    assert table.column_names == ["index", "label", "image", "corruption", "severity"]
    assert table.schema.field("severity").type == pa.int16()
    assert table.schema.field("corruption").type == pa.string()
    assert table.num_rows == 15
    assert table.column("severity").to_pylist() == [s for s in range(1, 6) for _ in range(3)]
    assert table.column("index").to_pylist() == [2, 5, 9] * 5
    assert table.column("label").to_pylist() == [0, 1, 2] * 5
    assert set(table.column("corruption").to_pylist()) == {"gaussian_noise"}

    noisy = read_images(out)
    order = np.argsort(clean.index)
    for s in range(1, 6):
        expected = apply_corruption(
            "gaussian_noise", clean.images[order], s, corruption_seed(4, "gaussian_noise", s)
        )
        np.testing.assert_array_equal(noisy.images[(s - 1) * 3 : s * 3], expected)

    again = tmp_path / "again.parquet"
    corrupt_stage.main([*argv, "--severities", "1", "2", "3", "4", "5", "--out", str(again)])
    assert pq.read_table(again).equals(table)
    assert not list(out.parent.glob("*.tmp"))


def test_corrupt_stage_errors(tmp_path) -> None:
    src = tmp_path / "test.parquet"
    write_images(
        ImageSet(np.zeros((1, 8, 8, 1), np.uint8), np.zeros(1, np.int16), np.zeros(1), ["a"]), src
    )
    base = ["--input", str(src), "--seed", "0", "--out", str(tmp_path / "o.parquet")]
    with pytest.raises(SystemExit, match="unknown --corruption 'fog'; known: .*contrast"):
        corrupt_stage.main([*base, "--corruption", "fog"])
    with pytest.raises(SystemExit, match="severity must be in 1-5, got 6"):
        corrupt_stage.main([*base, "--corruption", "contrast", "--severities", "1", "6"])
    assert not (tmp_path / "o.parquet").exists()
