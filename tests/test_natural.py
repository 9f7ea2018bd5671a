"""The corruption engine's public API (robustlab.noise.natural) and the corrupt stage."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise import natural
from robustlab.noise.natural import (
    COMMON,
    GROUPS,
    apply_corruption,
    chunk_size,
    corruption_group,
    corruption_names,
    corruption_seed,
    get_corruption,
    resolution_class,
)
from robustlab.registry import UnknownNameError
from stages import corrupt as corrupt_stage

IMAGENET_C = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform",
    "pixelate", "jpeg_compression",
]  # fmt: skip
EXTRAS = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
GEOMETRIC = ["shear", "rotate", "scale", "translate"]
#: corruptions that draw random numbers (the others must ignore the seed)
RANDOM = {
    "gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow",
    "frost", "fog", "elastic_transform", "speckle_noise", "spatter", "shear", "rotate",
    "translate",
}  # fmt: skip


def smooth(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Natural-ish test images: a few smooth blobs and an edge per image, plus mild noise."""
    n, h, w, c = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = np.empty(shape)
    for i in range(n):
        img = 60 + 80 * (xx > rng.uniform(0.3, 0.7))
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8, 3)
            img = img + 70 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 * r))
        tint = rng.uniform(0.6, 1.0, c)
        out[i] = img[..., None] * tint + rng.normal(0, 6, (h, w, c))
    return np.clip(out, 0, 255).astype(np.uint8)


def test_registry_names_and_groups() -> None:
    names = corruption_names()
    assert names == sorted(IMAGENET_C + EXTRAS + GEOMETRIC)
    assert list(COMMON) == IMAGENET_C
    assert sorted(n for group in GROUPS.values() for n in group) == names
    assert corruption_group("fog") == "weather" and corruption_group("shear") == "geometric"
    assert get_corruption("contrast") is natural.contrast
    assert get_corruption("elastic_transform") is natural.elastic_transform


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_corruption("haze")
    message = str(err.value)
    assert "unknown corruption 'haze'" in message
    assert all(name in message for name in IMAGENET_C)
    with pytest.raises(KeyError):
        apply_corruption("haze", np.zeros((1, 32, 32, 1), np.uint8), 1, 0)
    with pytest.raises(UnknownNameError):
        corruption_group("haze")


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True, "3"])
def test_bad_severity(severity: object) -> None:
    images = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="severity must be"):
        apply_corruption("gaussian_noise", images, severity, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="severity must be"):
        natural.contrast(images, severity, np.random.default_rng(0))  # type: ignore[arg-type]


def test_bad_images() -> None:
    with pytest.raises(ValueError, match="uint8 N x H x W x C"):
        apply_corruption("contrast", np.zeros((1, 32, 32, 3), np.float32), 1, 0)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        apply_corruption("contrast", np.zeros((1, 32, 32, 2), np.uint8), 1, 0)
    with pytest.raises(ValueError, match="N x H x W x C"):
        natural.fog(np.zeros((32, 32, 3), np.uint8), 1, np.random.default_rng(0))


def test_resolution_classes_and_unsupported_sizes() -> None:
    assert [resolution_class(s, s) for s in (20, 28)] == ["tiny", "tiny"]
    assert [resolution_class(s, s) for s in (29, 32, 64)] == ["small"] * 3
    assert resolution_class(48, 64) == "small"
    assert resolution_class(224, 224) == resolution_class(256, 320) == "large"
    for h, w in [(8, 8), (19, 19), (28, 32), (65, 65), (100, 100), (32, 224), (223, 300)]:
        with pytest.raises(ValueError, match=f"no corruption parameter table for {h}x{w}"):
            resolution_class(h, w)
    with pytest.raises(ValueError, match="resize or crop the images"):
        apply_corruption("contrast", np.zeros((1, 96, 96, 3), np.uint8), 1, 0)
    with pytest.raises(ValueError, match="no corruption parameter table for 8x8"):
        natural.jpeg_compression(np.zeros((1, 8, 8, 1), np.uint8), 1, np.random.default_rng(0))


def grey_identity(name: str, x: np.ndarray, severity: int) -> bool:
    """Saturate without an additive term leaves grey pixels grey: the only allowed no-op."""
    if name != "saturate" or x.shape[-1] != 1:
        return False
    return natural.parameter(name, severity, x.shape[1], x.shape[2]).shift == 0


CASES = [((3, 28, 28, 1), "tiny"), ((3, 32, 32, 3), "small"), ((2, 30, 40, 1), "small")]


@pytest.mark.parametrize(("shape", "table"), CASES, ids=["28-grey", "32-rgb", "30x40-grey"])
def test_every_corruption_and_severity_runs(shape: tuple[int, ...], table: str) -> None:
    x = smooth(shape)
    assert resolution_class(shape[1], shape[2]) == table
    for name in corruption_names():
        for severity in range(1, 6):
            out = apply_corruption(name, x, severity, seed=severity)
            assert out.dtype == np.uint8 and out.shape == x.shape, (name, severity)
            assert not np.array_equal(out, x) or grey_identity(name, x, severity), (name, severity)


def test_every_corruption_runs_at_224() -> None:
    grey, rgb = smooth((1, 224, 224, 1)), smooth((1, 224, 224, 3))
    for name in corruption_names():
        for x in (grey, rgb):
            for severity in (1, 5):
                out = apply_corruption(name, x, severity, seed=0)
                assert out.dtype == np.uint8 and out.shape == x.shape, (name, severity)
                assert not np.array_equal(out, x) or grey_identity(name, x, severity), name


@pytest.mark.parametrize("shape", [(4, 32, 32, 3), (4, 28, 28, 1)])
def test_deterministic(shape: tuple[int, ...]) -> None:
    x = smooth(shape)
    for name in corruption_names():
        a = apply_corruption(name, x, 3, seed=11)
        np.testing.assert_array_equal(a, apply_corruption(name, x, 3, seed=11), err_msg=name)
        other = apply_corruption(name, x, 3, seed=12)
        assert np.array_equal(a, other) != (name in RANDOM), name
        direct = get_corruption(name)(x, 3, np.random.default_rng(11))
        np.testing.assert_array_equal(a, direct, err_msg=name)


def test_chunks_share_one_generator() -> None:
    # 2049 images of 32 x 32 are two chunks; the second chunk continues the same stream
    assert chunk_size(32, 32) == 2048 and chunk_size(224, 224) == 41
    x = np.full((2049, 32, 32, 1), 128, np.uint8)
    out = apply_corruption("gaussian_noise", x, 1, seed=3)
    rng = np.random.default_rng(3)
    first = natural.gaussian_noise(x[:2048], 1, rng)
    second = natural.gaussian_noise(x[2048:], 1, rng)
    np.testing.assert_array_equal(out, np.concatenate([first, second]))
    assert apply_corruption("fog", x[:0], 2, 0).shape == (0, 32, 32, 1)


#: Published ladders whose mean absolute change is not monotone, and the severities s where
#: MAD(s + 1) < MAD(s) is allowed, with the reason:
NOT_MONOTONE = {
    # saturate: severities 1-2 desaturate (x0.3, x0.1), 3-5 saturate: a new direction at 3
    ("small", "saturate"): (2,),
    # spatter: severities 1-3 are water drops, 4-5 mud blots (a different corruption)
    ("small", "spatter"): (3,),
    ("large", "spatter"): (3,),
    # glass blur: a larger blur at the same shuffle smooths the shuffled pixels back
    ("small", "glass_blur"): (1, 2, 4),
    ("tiny", "glass_blur"): (3,),
    # ImageNet-C / CIFAR-10-C elastic: the ladders change the displacement's smoothness and the
    # affine part against each other (ImageNet-C 1-2: sigma 171 and 20 px, 3-5: 2.4 px)
    ("small", "elastic_transform"): (1, 2, 3, 4),
    ("large", "elastic_transform"): (2,),
}
#: frost blends towards a bright texture: lowering the image weight can lower the MAD; its
#: strength is the texture : image weight ratio, checked in test_frost_ratio_increases
SKIP_MAD = {"frost"}


def test_frost_ratio_increases() -> None:
    for table in natural.TABLES.values():
        ratios = [f / i for i, f in table["frost"]]
        assert all(a < b for a, b in zip(ratios, ratios[1:], strict=False))


@pytest.mark.parametrize(
    ("shape", "table"),
    [((48, 28, 28, 1), "tiny"), ((48, 32, 32, 3), "small"), ((3, 224, 224, 3), "large")],
)
def test_severity_increases_distortion(shape: tuple[int, ...], table: str) -> None:
    """Mean absolute change is non-decreasing in severity, except the documented ladders."""
    x = smooth(shape, seed=1)
    for name in corruption_names():
        if name in SKIP_MAD:
            continue
        mad = [
            np.abs(apply_corruption(name, x, s, seed=7).astype(np.float64) - x).mean()
            for s in range(1, 6)
        ]
        skip = NOT_MONOTONE.get((table, name), ())
        for s in range(1, 5):
            if s in skip:
                continue
            # 2 % slack: random corruptions at equal parameters differ by sampling only
            assert mad[s] >= 0.98 * mad[s - 1], (name, s + 1, np.round(mad, 2))
        if not skip:
            assert mad[4] > mad[0], (name, np.round(mad, 2))


def test_grey_equals_rgb_for_channelwise_corruptions() -> None:
    """Channel-wise corruptions act on grey as on each channel of equal RGB (random ones draw
    the same numbers for both: their draws do not depend on the channels)."""
    grey = smooth((2, 32, 32, 1))
    rgb = np.repeat(grey, 3, axis=-1)
    channelwise = ["defocus_blur", "zoom_blur", "gaussian_blur", "pixelate", "contrast"]
    same_draws = ["glass_blur", "motion_blur", "elastic_transform", "fog", "shear", "translate"]
    for name in channelwise + same_draws:
        for severity in (1, 5):
            a = apply_corruption(name, grey, severity, 0)
            b = apply_corruption(name, rgb, severity, 0)
            for ch in range(3):
                np.testing.assert_array_equal(b[..., ch], a[..., 0], err_msg=name)


def test_grey_colour_corruptions_return_luma() -> None:
    """Colour corruptions give grey images the luma of the three-channel result (within 1)."""
    grey = smooth((3, 32, 32, 1))
    rgb = np.repeat(grey, 3, axis=-1)
    weights = np.array([0.299, 0.587, 0.114])
    for name in ["saturate", "spatter", "brightness", "frost", "snow"]:
        for severity in (2, 5):
            a = apply_corruption(name, grey, severity, 5).astype(np.float64)[..., 0]
            b = apply_corruption(name, rgb, severity, 5).astype(np.float64) @ weights
            assert np.abs(a - b).max() <= 1.5, (name, severity)


def test_corruption_seed_is_stable() -> None:
    assert corruption_seed(0, "gaussian_noise", 1) == 3800568186
    assert corruption_seed(0, "gaussian_noise", 2) != corruption_seed(0, "gaussian_noise", 1)
    assert corruption_seed(1, "gaussian_noise", 1) != corruption_seed(0, "gaussian_noise", 1)


def _write_clean(path, shape=(3, 32, 32, 3)) -> ImageSet:
    rng = np.random.default_rng(0)
    clean = ImageSet(
        images=rng.integers(0, 256, shape, dtype=np.uint8),
        labels=np.array([1, 0, 2], np.int16),
        index=np.array([5, 2, 9], np.int64),
        class_names=["a", "b", "c"],
        source_checksum="abc123",
    )
    write_images(clean, path)
    return clean


@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur"])
def test_corrupt_stage(tmp_path, name: str) -> None:
    src = tmp_path / "test.parquet"
    clean = _write_clean(src)
    out = tmp_path / "noisy" / f"{name}.parquet"
    argv = ["--input", str(src), "--corruption", name, "--seed", "4", "--no-progress"]
    corrupt_stage.main([*argv, "--severities", "1", "2", "3", "4", "5", "--out", str(out)])

    table = pq.read_table(out)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["height"] == "32" and meta["width"] == "32" and meta["channels"] == "3"
    assert meta["class_names"] == '["a", "b", "c"]' and meta["source_checksum"] == "abc123"
    assert table.column_names == ["index", "label", "image", "corruption", "severity"]
    assert table.schema.field("severity").type == pa.int16()
    assert table.schema.field("corruption").type == pa.string()
    assert table.num_rows == 15
    assert table.column("severity").to_pylist() == [s for s in range(1, 6) for _ in range(3)]
    assert table.column("index").to_pylist() == [2, 5, 9] * 5
    assert table.column("label").to_pylist() == [0, 1, 2] * 5
    assert set(table.column("corruption").to_pylist()) == {name}

    noisy = read_images(out)
    order = np.argsort(clean.index)
    for s in range(1, 6):
        expected = apply_corruption(name, clean.images[order], s, corruption_seed(4, name, s))
        np.testing.assert_array_equal(noisy.images[(s - 1) * 3 : s * 3], expected)

    again = tmp_path / "again.parquet"
    corrupt_stage.main([*argv, "--severities", "1", "2", "3", "4", "5", "--out", str(again)])
    assert pq.read_table(again).equals(table)
    assert not list(out.parent.glob("*.tmp"))


def test_corrupt_stage_errors(tmp_path) -> None:
    src = tmp_path / "test.parquet"
    _write_clean(src)
    base = ["--input", str(src), "--seed", "0", "--out", str(tmp_path / "o.parquet")]
    with pytest.raises(SystemExit, match="unknown --corruption 'haze'; known: .*contrast"):
        corrupt_stage.main([*base, "--corruption", "haze"])
    with pytest.raises(SystemExit, match="severity must be in 1-5, got 6"):
        corrupt_stage.main([*base, "--corruption", "contrast", "--severities", "1", "6"])
    with pytest.raises(SystemExit, match="duplicates"):
        corrupt_stage.main([*base, "--corruption", "contrast", "--severities", "2", "2"])
    small = tmp_path / "small.parquet"
    _write_clean(small, shape=(3, 8, 8, 1))
    small_args = ["--input", str(small), "--seed", "0", "--out", str(tmp_path / "o.parquet")]
    with pytest.raises(SystemExit, match=r"small.parquet: no corruption parameter table for 8x8"):
        corrupt_stage.main([*small_args, "--corruption", "contrast"])
    assert not (tmp_path / "o.parquet").exists()
