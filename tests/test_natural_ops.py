"""Building blocks of the corruption engine on hand-computed fixtures and exact oracles."""

from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from robustlab.noise import natural
from robustlab.noise.natural import apply_corruption, levels, noise, ops, textures
from robustlab.noise.natural.blur import glass_shuffle_index
from robustlab.noise.natural.digital import (
    box_edges_on_centres,
    box_upscale_source,
    opencv_copies_like_pil,
)
from robustlab.noise.natural.extra import saturate_float
from robustlab.noise.natural.weather import snow_noise


def blocks(values: np.ndarray, size: int) -> np.ndarray:
    """Repeat each entry of a 2-D array into a size x size block -> 1 x H x W x 1 uint8."""
    return np.kron(values, np.ones((size, size))).astype(np.uint8)[None, :, :, None]


def test_boundary_index_modes() -> None:
    i = np.arange(-5, 9)  # n = 4
    assert ops.boundary_index(i, 4, "nearest").tolist() == [0] * 5 + [0, 1, 2, 3] + [3] * 5
    assert ops.boundary_index(i, 4, "reflect").tolist() == [
        3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0,
    ]  # fmt: skip
    assert ops.boundary_index(i, 4, "reflect101").tolist() == [
        1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown boundary mode 'wrap'"):
        ops.boundary_index(i, 4, "wrap")


@pytest.mark.parametrize("mode", ["nearest", "reflect"])
@pytest.mark.parametrize(("n", "sigma", "truncate"), [(28, 0.7, 4.0), (32, 6.0, 4.0), (20, 30, 3)])
def test_gaussian_matrix_is_scipys_filter(n: int, sigma: float, truncate: float, mode: str) -> None:
    v = np.random.default_rng(0).random(n)
    expected = ndimage.gaussian_filter1d(v, sigma, mode=mode, truncate=truncate)
    np.testing.assert_allclose(
        ops.gaussian_matrix(n, sigma, truncate, mode) @ v, expected, atol=1e-12
    )


@pytest.mark.parametrize("n", [28, 32, 33, 224])
@pytest.mark.parametrize("factor", [1.0, 1.01, 1.06, 1.25, 1.75, 4.5])
def test_zoom_matrix_is_scipys_centre_zoom(n: int, factor: float) -> None:
    v = np.random.default_rng(1).random(n)
    top, crop, out = ops.zoom_size(n, factor)
    assert crop == int(np.ceil(n / factor)) and top == (n - crop) // 2
    zoomed = ndimage.zoom(v[top : top + crop], factor, order=1)
    assert len(zoomed) == out >= n
    np.testing.assert_allclose(ops.zoom_matrix(n, factor) @ v, zoomed[:n], atol=1e-12)
    np.testing.assert_allclose(ops.zoom_matrix(n, factor, full=True) @ v, zoomed, atol=1e-12)


def test_box_upscale_source_is_pils_copy() -> None:
    # 2 -> 4 copies each input twice. 4 -> 6 (scale 1.5): output i's centre (i + 0.5) / 1.5
    # in input units is 0.33, 1, 1.67, 2.33, 3, 3.67; PIL's box filter takes the input whose
    # centre j + 0.5 lies in (centre - 0.5, centre + 0.5]: inputs 0, 1, 1, 2, 3, 3 (the ties
    # at 1 and 3 go up, where NEAREST would give 0, 1, 1, 2, 2, 3)
    assert box_upscale_source(2, 4).tolist() == [0, 0, 1, 1]
    assert box_upscale_source(4, 6).tolist() == [0, 1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="not an upscale"):
        box_upscale_source(6, 4)


def test_box_edges_on_centres() -> None:
    # 6 -> 4: box edges at 1.5, 3, 4.5; 1.5 and 4.5 are the centres of pixels 1 and 4.
    # 224 -> 89: an edge i 224 / 89 = m + 0.5 needs 89 | i, none for 0 < i < 89; 32 -> 16:
    # edges at even integers, never a centre
    assert box_edges_on_centres(6, 4)
    assert not box_edges_on_centres(224, 89) and not box_edges_on_centres(32, 16)


def test_opencv_copies_like_pil_only_without_ties() -> None:
    # 89 -> 224 has no output centre on an input edge: both pick floor((i + 0.5) 89 / 224);
    # 4 -> 6 has two (above): OpenCV rounds them down to 0, 1, 1, 2, 2, 3, PIL up
    assert opencv_copies_like_pil(89, 224)
    assert not opencv_copies_like_pil(4, 6)


def test_pixelate_hand_computed_at_224() -> None:
    # severity 5 (large): int(224 * 0.25) = 56, so every 4 x 4 block becomes its mean; a block
    # holding a and a + 4 in a checkerboard has mean a + 2, and the box upscale copies it back
    base = np.random.default_rng(2).integers(0, 250, (56, 56))
    checker = np.kron(np.ones((56, 56)), 4 * (np.indices((4, 4)).sum(axis=0) % 2))
    x = (np.kron(base, np.ones((4, 4))) + checker).astype(np.uint8)[None, :, :, None]
    out = apply_corruption("pixelate", x, 5, 0)
    np.testing.assert_array_equal(out, blocks(base + 2, 4))


@pytest.mark.parametrize(
    "shape", [(2, 28, 28, 1), (2, 32, 32, 3), (2, 48, 64, 3), (1, 224, 224, 1)]
)
def test_pixelate_equals_pil_box_both_ways(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    _, h, w, c = shape
    for severity in range(1, 6):
        factor = natural.parameter("pixelate", severity, h, w)
        out = apply_corruption("pixelate", x, severity, 0)
        for i in range(len(x)):
            im = Image.fromarray(x[i, :, :, 0] if c == 1 else x[i])
            small = im.resize((int(w * factor), int(h * factor)), Image.Resampling.BOX)
            expected = np.asarray(small.resize((w, h), Image.Resampling.BOX)).reshape(h, w, c)
            np.testing.assert_array_equal(out[i], expected)


def pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 32, 32, 3), (1, 224, 224, 3)])
def test_jpeg_equals_pil(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(4).integers(0, 256, shape).astype(np.uint8)
    x = ndimage.uniform_filter(x, size=(1, 3, 3, 1))  # some structure for the codec
    for severity in range(1, 6):
        quality = natural.parameter("jpeg_compression", severity, shape[1], shape[2])
        out = apply_corruption("jpeg_compression", x, severity, 0)
        for i in range(len(x)):
            image = x[i, :, :, 0] if shape[-1] == 1 else x[i]
            np.testing.assert_array_equal(out[i], pil_jpeg(image, quality).reshape(shape[1:]))


def test_contrast_hand_computed() -> None:
    # mean (0 + 100 + 200 + 255) / 4 = 138.75; severity 1 (small) c = 0.75:
    # (v - 138.75) * 0.75 + 138.75 -> 34.6875, 109.6875, 184.6875, 225.9375 -> truncated
    x = blocks(np.array([[0, 100], [200, 255]]), 16)
    out = apply_corruption("contrast", x, 1, seed=0)
    np.testing.assert_array_equal(out[0, ::16, ::16, 0], [[34, 109], [184, 225]])
    # RGB: the mean is per channel; a constant channel is unchanged
    rgb = np.concatenate([x, np.full_like(x, 50), blocks(np.array([[10, 20], [30, 40]]), 16)], -1)
    out = apply_corruption("contrast", rgb, 5, seed=0)  # c = 0.15
    np.testing.assert_array_equal(out[0, ::16, ::16, 0], [[117, 132], [147, 156]])
    np.testing.assert_array_equal(out[0, ..., 1], 50)
    np.testing.assert_array_equal(out[0, ::16, ::16, 2], [[22, 24], [25, 27]])


def test_brightness_hand_computed() -> None:
    # severity 1 (small) adds 0.05 to the HSV value: 12.75 grey levels at the brightest channel
    grey = blocks(np.array([[100, 250], [100, 250]]), 16)
    np.testing.assert_array_equal(
        apply_corruption("brightness", grey, 1, 0)[0, 0, ::16, 0], [112, 255]
    )
    rgb = np.zeros((1, 32, 32, 3), np.uint8)
    rgb[0, :16] = [200, 100, 0]
    # scale by (200 + 12.75) / 200 keeps hue and saturation: 212.75, 106.375, 0; black -> grey
    out = apply_corruption("brightness", rgb, 1, 0)
    np.testing.assert_array_equal(out[0, 0, 0], [212, 106, 0])
    np.testing.assert_array_equal(out[0, 31, 31], [12, 12, 12])


def _hsv_oracle(rgb: np.ndarray, scale: float, shift: float) -> np.ndarray:
    out = []
    for r, g, b in rgb:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out.append(colorsys.hsv_to_rgb(h, min(max(s * scale + shift, 0), 1), v))
    return np.array(out)


def test_saturate_closed_form_equals_hsv_round_trip() -> None:
    rng = np.random.default_rng(5)
    rgb = rng.random((500, 3))
    rgb[:50] = rgb[:50, :1]  # grey pixels: hue 0 (red) when saturated
    rgb[50:60] = 0
    for scale, shift in [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2), (1, 0.6)]:
        ours = saturate_float(rgb.astype(np.float32)[None, None], scale, shift)[0, 0]
        np.testing.assert_allclose(ours, _hsv_oracle(rgb, scale, shift), atol=2e-6)


def test_defocus_impulse_becomes_disk() -> None:
    x = np.zeros((1, 32, 32, 1), np.uint8)
    x[0, 16, 16, 0] = 255
    # severity 5 (small): radius 1.5 covers the 3 x 3 block (dist^2 <= 2.25); alias sigma 0.1 is
    # negligible: each pixel gets 255 / 9 = 28.33 -> 28
    out = apply_corruption("defocus_blur", x, 5, 0)[0, :, :, 0]
    expected = np.zeros((32, 32), np.uint8)
    expected[15:18, 15:18] = 28
    np.testing.assert_array_equal(out, expected)
    # severity 4: radius 1 is a 5-pixel cross of 255 / 5 = 51; the sigma-0.2 alias blur moves
    # exp(-12.5) / (1 + 2 exp(-12.5)) of each pixel to each side: the arms lose ~6e-4 (-> 50)
    out = apply_corruption("defocus_blur", x, 4, 0)[0, :, :, 0]
    expected = np.zeros((32, 32), np.uint8)
    expected[15:18, 16] = expected[16, 15:18] = 50
    expected[16, 16] = 51
    np.testing.assert_array_equal(out, expected)


def test_disk_kernels_keep_the_references_sums() -> None:
    # ImageNet-C's kernels sum to 1 while the disk fits its support; radius 8 and 10 touch the
    # border, where the mirrored alias blur adds mass (1.013 and 1.011 in the reference)
    sums = {r: ops.disk_kernel(r, a).sum() for r, a in [(3, 0.1), (6, 0.5), (8, 0.5), (10, 0.5)]}
    assert sums[3] == pytest.approx(1, abs=1e-9) and sums[6] == pytest.approx(1, abs=1e-6)
    assert sums[8] == pytest.approx(1.0129755, abs=1e-6)
    assert sums[10] == pytest.approx(1.0107858, abs=1e-6)
    assert ops.disk_kernel(1.5, 0.1).shape == (5, 5) and ops.disk_kernel(10, 0.5).shape == (21, 21)


def _emulate_glass(draws: np.ndarray, h: int, w: int, d: int) -> np.ndarray:
    """The reference loop on an H x W x 3 array: the tuple 'swap' of two views copies.

    ``draws`` holds one code c per visit: dy = c // 2d - d, dx = c % 2d - d.
    """
    img = np.repeat(np.arange(h * w).reshape(h, w, 1), 3, axis=-1)
    for it in range(draws.shape[0]):
        for hi in range(h - d, d, -1):
            for wi in range(w - d, d, -1):
                dy, dx = divmod(int(draws[it, hi - d - 1, wi - d - 1]), 2 * d)
                dy, dx = dy - d, dx - d
                img[hi, wi], img[hi + dy, wi + dx] = img[hi + dy, wi + dx], img[hi, wi]
    return img[..., 0]


class _Recorder:
    def __init__(self, seed: int) -> None:
        self.rng, self.draws = np.random.default_rng(seed), []

    def integers(self, low, high, size, dtype):
        self.draws.append(self.rng.integers(low, high, size=size, dtype=dtype))
        return self.draws[-1]


@pytest.mark.parametrize(
    ("h", "w", "d", "iterations"), [(12, 15, 1, 2), (20, 20, 2, 3), (9, 9, 4, 1)]
)
def test_glass_shuffle_resolves_the_reference_loop(h: int, w: int, d: int, iterations: int) -> None:
    rec = _Recorder(6)
    index = glass_shuffle_index(rec, 3, h, w, d, iterations)  # type: ignore[arg-type]
    for k in range(3):
        draws = np.stack([rec.draws[i][k] for i in range(iterations)])
        # indices are into the flattened batch: image k's pixels start at k h w
        np.testing.assert_array_equal(index[k] - k * h * w, _emulate_glass(draws, h, w, d))
    # the copies duplicate pixels: fewer distinct sources than pixels
    assert len(np.unique(index[0])) < h * w
    # the codes cover every (dy, dx) in -d .. d - 1
    assert set(np.concatenate([a.ravel() for a in rec.draws]).tolist()) <= set(range(4 * d * d))


def test_motion_offsets_hand_computed() -> None:
    width = 7
    off = ops.motion_offsets(np.array([0.0, 90.0, 45.0, -45.0]), width, 32, 32)
    assert off[0, :, 1].tolist() == list(range(7)) and off[0, :, 0].tolist() == [0] * 7
    assert off[1, :, 0].tolist() == list(range(7))
    # i sin 45 = 0.707 i: ceil(0.707 i - 0.5) = 0, 1, 1, 2, 3, 4, 4 (ceil(-0.5) = 0)
    assert off[2, :, 0].tolist() == [0, 1, 1, 2, 3, 4, 4] == off[2, :, 1].tolist()
    assert off[3, :, 0].tolist() == [0, -1, -1, -2, -3, -4, -4]
    assert off[..., 2].all()
    # taps from the first offset reaching the image size on are dropped
    short = ops.motion_offsets(np.array([0.0]), 31, 28, 28)
    assert short[0, :, 2].tolist() == [1] * 28 + [0] * 3


def test_motion_blur_of_an_impulse_is_a_trail() -> None:
    x = np.zeros((1, 32, 32, 1), np.float32)
    x[0, 16, 20, 0] = 255
    taps = ops.motion_taps(3, 2.0)
    assert taps == pytest.approx(
        np.exp(-(np.arange(7) ** 2) / 8) / np.exp(-(np.arange(7) ** 2) / 8).sum()
    )
    out = ops.motion_blur(x, np.array([0.0]), 3, 2.0)[0, :, :, 0]
    # tap i reads x + i: the impulse appears i pixels to its left with weight taps[i]
    expected = np.zeros((32, 32))
    expected[16, 20 - np.arange(7)] = 255 * taps
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # edges repeat: a constant image stays constant
    flat = np.full((2, 32, 32, 3), 77, np.float32)
    np.testing.assert_allclose(
        ops.motion_blur(flat, np.array([30.0, -40.0]), 9, 2.5), 77, atol=1e-4
    )


def test_sample_bilinear_matches_scipy_and_zero_padding() -> None:
    rng = np.random.default_rng(7)
    img = rng.random((1, 20, 30, 2)).astype(np.float32)
    ys, xs = rng.uniform(-25, 45, (2, 1, 20, 30))
    ours = ops.sample_bilinear(img, ys, xs, "reflect")[0]
    for c in range(2):
        expected = ndimage.map_coordinates(img[0, ..., c], [ys[0], xs[0]], order=1, mode="reflect")
        np.testing.assert_allclose(ours[..., c], expected, atol=1e-5)
    # constant: half a pixel outside mixes half of the edge pixel with black
    one = np.full((1, 20, 20, 1), 1.0, np.float32)
    got = ops.sample_bilinear(
        one, np.array([[[-0.5, 10, 25]]]), np.array([[[10, 19.5, 10]]]), "constant"
    )
    np.testing.assert_allclose(got[0, 0, :, 0], [0.5, 0.5, 0.0], atol=1e-6)


def test_translate_hand_computed() -> None:
    x = np.zeros((4, 28, 28, 1), np.uint8)
    x[:, 10:14, 10:14] = 200
    out = apply_corruption("translate", x, 3, seed=0)  # 3 px, random signs per image
    shifts = set()
    for k in range(4):
        ys, xs = np.nonzero(out[k, :, :, 0])
        assert out[k].max() == 200 and out[k].sum() == x[k].sum()
        shifts.add((ys.min() - 10, xs.min() - 10))
    assert shifts <= {(3, 3), (3, -3), (-3, 3), (-3, -3)}


def test_affine_corruptions_match_skimage_warp() -> None:
    transform = pytest.importorskip("skimage.transform")
    x = np.random.default_rng(8).integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
    cases = {
        "shear": natural.geometric.shear_matrices(np.array([0.4, -0.8])),
        "rotate": natural.geometric.rotation_matrices(np.array([0.6, -1.0])),
        "scale": np.stack([np.eye(2) / 0.7] * 2),
    }
    for name, matrices in cases.items():
        ours = natural.geometric.warp(x, matrices)
        for k in range(2):
            affine = np.vstack([ops.centred_affine(matrices[k], 28, 28), [0, 0, 1]])
            ref = transform.warp(
                x[k, :, :, 0] / 255, transform.ProjectiveTransform(affine), order=1, cval=0
            )
            expected = (np.clip(ref, 0, 1) * 255).astype(np.uint8)
            assert np.abs(expected.astype(int) - ours[k, :, :, 0]).max() <= 1, name
    # MNIST-C's shear matrix (scikit-image < 0.19 convention): [[1, -sin c], [0, cos c]]
    np.testing.assert_allclose(
        natural.geometric.shear_matrices(np.array([0.4]))[0], [[1, -np.sin(0.4)], [0, np.cos(0.4)]]
    )


def test_plasma_fractal_range_and_errors() -> None:
    maps = textures.plasma_fractal(np.random.default_rng(9), 3, 32, 2.0)
    assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
    np.testing.assert_allclose(maps.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1)
    assert not np.array_equal(maps[0], maps[1])
    with pytest.raises(ValueError, match="power of two"):
        textures.plasma_fractal(np.random.default_rng(0), 1, 48, 2.0)
    assert [textures.next_power_of_two(n) for n in (1, 28, 32, 33, 224)] == [1, 32, 32, 64, 256]


def test_gaussian_noise_sigma() -> None:
    x = np.full((12, 64, 64, 1), 128, np.uint8)
    for severity, sigma in enumerate([0.04, 0.06, 0.08, 0.09, 0.10], start=1):
        out = apply_corruption("gaussian_noise", x, severity, seed=severity).astype(np.float64)
        # truncation adds uniform quantisation noise (variance 1/12) and shifts the mean by -0.5
        assert out.std() == pytest.approx(np.sqrt((sigma * 255) ** 2 + 1 / 12), rel=0.02)
        assert out.mean() == pytest.approx(127.5, abs=0.5)


class _FixedIntegers:
    """Stands in for a generator drawing the given 32-bit values r in two 16-bit halves: the
    first ``integers`` call returns every r's high half, the second the low halves of the
    values at ``split`` (those whose guide bucket holds a step), in order."""

    def __init__(self, values: list[int], split: list[int]) -> None:
        r = np.array(values, np.uint32)
        self.halves = [(r >> 16).astype(np.uint16), (r[split] & 0xFFFF).astype(np.uint16)]

    def integers(self, low, high, size, dtype):
        assert (low, high, dtype) == (0, 1 << 16, np.uint16)
        values = self.halves.pop(0)
        assert values.size == np.prod(size)
        return values.reshape(size)


def test_level_sampling_by_inversion_hand_computed() -> None:
    cdf = np.ones((256, 256))
    cdf[10, :2] = [0.3, 0.75]  # level 10 -> 0, 1, 2 with probabilities 0.3, 0.45, 0.25
    cdf[20, :3] = [0.5, 0.5 + 1e-9, 0.5 + 2e-9]  # three steps inside one guide bucket
    tables = levels.level_tables(cdf)
    # thresholds ceil(p 2^32): 0.3 -> 1288490189 (0.3 x 2^32 = 1288490188.8), 0.75 -> 3 x 2^30;
    # 0.5 + 1e-9 -> 2^31 + 5 (2^31 + 4.29), 0.5 + 2e-9 -> 2^31 + 9 (2^31 + 8.59)
    assert tables.thresholds[10, :3].tolist() == [1288490189, 3 << 30, 1 << 32]
    assert tables.thresholds[20, :3].tolist() == [1 << 31, (1 << 31) + 5, (1 << 31) + 9]
    assert tables.guide[10, 1288490189 >> 20] >= 256  # a step inside the bucket: refined
    r = [1288490188, 1288490189, (3 << 30) - 1, 3 << 30, (1 << 32) - 1]
    r += [(1 << 31) - 1, 1 << 31, (1 << 31) + 4, (1 << 31) + 5, (1 << 31) + 9, 7]
    images = np.array([10] * 5 + [20] * 5 + [255], np.uint8)
    # buckets holding a step: 1288490189 >> 20 = 1228 (level 10: r 0 and 1), 2^31 >> 20 = 2048
    # (level 20, steps at 2^31 + 5 and + 9: r 6 to 9); the others are settled by the guide
    split = [0, 1, 6, 7, 8, 9]
    fixed = _FixedIntegers(r, split)
    out = levels.sample_levels(images, tables, fixed)  # type: ignore[arg-type]
    assert fixed.halves == []  # both halves drawn
    assert out.tolist() == [0, 1, 1, 2, 2, 0, 1, 1, 2, 3, 0]
    with pytest.raises(ValueError, match="256 x 256"):
        levels.level_tables(np.ones((256, 10)))


def test_noise_laws_hand_computed() -> None:
    # Gaussian, sigma 0.08, level 128: P(out <= 127) = P(z < 0) = 1/2, threshold 2^31;
    # P(out <= 128) = P(z < 1 / (255 x 0.08)) = Phi(0.04902) = 1/2 + 0.04902 x 0.39886 = 0.519552
    gauss = noise.gaussian_tables(0.08)
    assert gauss.thresholds[128, 127] == 1 << 31
    assert gauss.thresholds[128, 128] / 2**32 == pytest.approx(0.519552, abs=1e-5)
    # shot, c = 255: count p gives level p; level 1 has lambda 1 and CDF e^-1 (1, 2, 2.5) at 0..2
    shot = noise.shot_tables(255.0)
    expected = np.exp(-1) * np.array([1, 2, 2.5])
    np.testing.assert_allclose(shot.thresholds[1, :3] / 2**32, expected, atol=1e-9)
    assert shot.thresholds[0, 0] == 1 << 32  # no light, no photons: always 0
    # speckle keeps black black; impulse: 0 and 255 with amount / 2 each
    assert noise.speckle_tables(0.6).thresholds[0, 0] == 1 << 32
    impulse = noise.impulse_tables(0.5)
    assert impulse.thresholds[100, [0, 99, 100, 254]].tolist() == [1 << 30] * 2 + [3 << 30] * 2


def test_shot_noise_variance() -> None:
    x = np.full((12, 64, 64, 1), 128, np.uint8)
    out = apply_corruption("shot_noise", x, 5, seed=0).astype(np.float64)  # c = 50
    assert out.std() == pytest.approx(255 * np.sqrt((128 / 255) / 50), rel=0.03)


def test_impulse_noise_fractions() -> None:
    x = np.full((12, 64, 64, 3), 128, np.uint8)
    out = apply_corruption("impulse_noise", x, 5, seed=0)  # amount 0.07
    assert set(np.unique(out)) == {0, 128, 255}
    assert (out == 255).mean() == pytest.approx(0.035, abs=0.003)
    assert (out == 0).mean() == pytest.approx(0.035, abs=0.003)


def test_frost_bank_is_fixed_and_fits_the_image() -> None:
    a, b = textures.frost_texture(2), textures.frost_texture(2)
    assert a is b and not a.flags.writeable and a.dtype == np.uint8 and a.shape[-1] == 3
    for scale, side in [(0.2, 28), (0.2, 64), (1.0, 224), (1.0, 700)]:
        for texture in textures.frost_bank(scale, side, side):
            assert texture.shape[0] > side and texture.shape[1] > side


def test_salt_and_pepper_is_the_impulse_tables_draw() -> None:
    """The direct salt-and-pepper draw gives the same bytes as inversion of the impulse law's
    tables with the same 32-bit uniforms (levels 0 and 255 included), and changes values."""
    x = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    x[0, 0, :4, 0] = [0, 1, 254, 255]
    r = np.random.default_rng(5).integers(0, 1 << 32, size=x.shape, dtype=np.uint32)
    for amount in (0.03, 0.27):
        direct = noise.salt_and_pepper(x, amount, _Uniforms32(r))  # type: ignore[arg-type]
        tables = noise.impulse_tables(amount)
        split = np.flatnonzero(tables.guide[x, r >> 20] >= 256)  # buckets holding a step
        fixed = _FixedIntegers(r.ravel().tolist(), split.tolist())
        assert np.array_equal(direct, levels.sample_levels(x, tables, fixed))  # type: ignore[arg-type]
        # a value changes with probability about the amount (less by 1/256 for 0 and 255);
        # 14,400 values: standard error under 0.004
        assert abs((direct != x).mean() - amount) < 0.015


def test_snow_noise_is_drawn_where_the_zoom_reads() -> None:
    """A generator draws snow noise only in the zoom's centre block; zooming it equals zooming
    any noise that agrees on that block, and the block holds N(mean, std) values."""
    p = natural.TABLES["large"]["snow"][2]  # zoom 4: ceil(224 / 4) = 56 rows read, 84 .. 139
    rows = ops.zoom_support(224, p.zoom)
    assert (rows.start, rows.stop) == (84, 140)
    z = snow_noise(np.random.default_rng(0), 2, 224, 224, p)
    assert not z[:, :84].any() and not z[:, :, 140:].any()
    block = z[:, rows, rows]
    assert block.mean() == pytest.approx(p.mean, abs=0.02)
    assert block.std() == pytest.approx(p.std, abs=0.02)
    other = np.random.default_rng(1).normal(size=z.shape).astype(np.float32)
    other[:, rows, rows] = block
    assert np.array_equal(ops.zoom_planes(z, p.zoom), ops.zoom_planes(other, p.zoom))
    other[:, 83, 100] += 1  # a value outside the block is never read; one inside is
    assert np.array_equal(ops.zoom_planes(z, p.zoom), ops.zoom_planes(other, p.zoom))
    other[:, 84, 100] += 1
    assert not np.array_equal(ops.zoom_planes(z, p.zoom), ops.zoom_planes(other, p.zoom))


class _Uniforms32:
    """Stands in for a generator: ``integers`` returns the given 32-bit values."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def integers(self, low, high, size, dtype):
        assert (low, high, dtype) == (0, 1 << 32, np.uint32)
        return self.values.reshape(size)


def test_raw_draws_are_the_generators_numbers() -> None:
    """The raw-bit readers give a PCG64 generator's own numbers and leave it in the same state
    (the next draw agrees), and fall back to the generator where they cannot (a buffered 32-bit
    half, a count that does not fill whole 64-bit outputs, a bound that is not a power of two)."""

    def both(draw, reference, prime=None):
        mine, theirs = np.random.default_rng(11), np.random.default_rng(11)
        if prime is not None:  # leaves a 32-bit half buffered in both
            prime(mine), prime(theirs)
        a, b = draw(mine), reference(theirs)
        assert a.dtype == b.dtype and np.array_equal(a, b)
        assert mine.integers(0, 1 << 30) == theirs.integers(0, 1 << 30)

    odd32 = lambda g: g.integers(0, 1 << 32, size=3, dtype=np.uint32)  # noqa: E731
    for shape in [(4, 8, 8, 3), (3, 5)]:
        for dtype in (np.uint16, np.uint32):
            top = 1 << (8 * np.dtype(dtype).itemsize)
            for prime in (None, odd32):
                both(
                    lambda g, d=dtype, s=shape: natural._base.uniform_bits(g, s, d),
                    lambda g, d=dtype, s=shape, t=top: g.integers(0, t, size=s, dtype=d),
                    prime,
                )
        for high in (4, 16, 36, 64):
            both(
                lambda g, h=high, s=shape: natural._base.small_integers(g, h, s),
                lambda g, h=high, s=shape: g.integers(0, h, size=s, dtype=np.uint8),
            )
        for low, high in [(-1.0, 1.0), (-0.3, 2.7)]:

            def reference(g, lo=low, hi=high, s=shape):
                u = g.random(s, dtype=np.float32)
                u *= np.float32(hi - lo)
                u += np.float32(lo)
                return u

            both(
                lambda g, lo=low, hi=high, s=shape: natural._base.uniform32(g, lo, hi, s), reference
            )


def test_offset_sampling_hand_computed() -> None:
    # d = -1, 0, 1 with probabilities 1/4, 1/2, 1/4: cdf[i] = P(d <= i - 256), thresholds
    # ceil(p 2^32) = 2^30 at i = 255 (d <= -1), 3 x 2^30 at i = 256 (d <= 0), 2^32 from 257
    cdf = np.zeros(512)
    cdf[255], cdf[256], cdf[257:] = 0.25, 0.75, 1.0
    tables = levels.offset_tables(cdf)
    assert tables.thresholds[254:258].tolist() == [0, 1 << 30, 3 << 30, 1 << 32]
    # bucket h holds r in [h 2^16, (h + 1) 2^16): the steps fall on bucket starts 2^14, 3 x 2^14
    assert tables.guide[[0, (1 << 14) - 1, 1 << 14, 3 << 14, (1 << 16) - 1]].tolist() == [
        -1,
        -1,
        0,
        1,
        1,
    ]
    assert not (tables.guide == levels.SPLIT).any()
    # k = 0, 100, 255 with r below 2^30 (d = -1), at 2^31 (d = 0), at 3 x 2^30 (d = 1):
    # clip(k + d) = 0, 99, 254 / 0, 100, 255 / 1, 101, 255
    images = np.array([0, 100, 255] * 3, np.uint8)
    r = [5] * 3 + [1 << 31] * 3 + [3 << 30] * 3
    out = levels.sample_offsets(images, tables, _FixedIntegers(r, []))  # type: ignore[arg-type]
    assert out.tolist() == [0, 99, 254, 0, 100, 255, 1, 101, 255]
    # a step inside a bucket: P(d <= -1) = 1/4 + 1e-9 -> threshold 2^30 + 5 (2^30 + 4.29), so
    # bucket 2^14 is split and its r are settled by the low half: 2^30 + 4 -> d = -1, + 5 -> 0
    cdf[255] = 0.25 + 1e-9
    tables = levels.offset_tables(cdf)
    assert tables.guide[1 << 14] == levels.SPLIT
    r = [(1 << 30) + 4, (1 << 30) + 5, 7]
    fixed = _FixedIntegers(r, [0, 1])
    out = levels.sample_offsets(np.array([50, 50, 50], np.uint8), tables, fixed)  # type: ignore[arg-type]
    assert fixed.halves == [] and out.tolist() == [49, 50, 49]
    with pytest.raises(ValueError, match="512 entries"):
        levels.offset_tables(np.ones(256))


def test_gaussian_offsets_are_the_gaussian_tables_draw() -> None:
    """Gaussian noise drawn as offsets gives the bytes of inverting the per-level tables with
    the same 32-bit uniforms (levels 0 and 255, where the clipping acts, included)."""
    x = np.random.default_rng(0).integers(0, 256, (2, 30, 30, 3), dtype=np.uint8)
    x[0, 0, :4, 0] = [0, 1, 254, 255]
    r = np.random.default_rng(5).integers(0, 1 << 32, size=x.size, dtype=np.uint32)
    for sigma in (0.04, 0.38):
        offsets, tables = noise.gaussian_offsets(sigma), noise.gaussian_tables(sigma)
        split = np.flatnonzero(offsets.guide[r >> 16] == levels.SPLIT)
        fixed = _FixedIntegers(r.tolist(), split.tolist())
        out = levels.sample_offsets(x, offsets, fixed)  # type: ignore[arg-type]
        assert fixed.halves == []
        # the table inversion: #{j : r >= thresholds[k, j]}
        expected = (r[:, None].astype(np.int64) >= tables.thresholds[x.ravel()]).sum(axis=1)
        assert np.array_equal(out.ravel(), expected)
        assert (out != x).mean() > 0.5  # noise of 10+ grey levels changes most values
