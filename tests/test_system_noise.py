"""System-noise variants (robustlab.noise.system) and the stages.system_noise CLI."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise.system import (
    Variant,
    decoders,
    encode_image,
    resizers,
    store_image,
    system_noise,
    variant_from_name,
    variant_grid,
)
from stages import system_noise as system_stage

PIL_RESIZES = ["pil_nearest", "pil_bilinear", "pil_bicubic", "pil_box", "pil_hamming"]
OPENCV_RESIZES = ["opencv_nearest", "opencv_linear", "opencv_area", "opencv_cubic"]
RESIZES = [*PIL_RESIZES, "pil_lanczos", *OPENCV_RESIZES, "opencv_lanczos4"]


def textured(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus mild texture (like a small natural image)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 100 * (xx / max(w - 1, 1)) + 40 * np.sin(yy / 2.0)
    noise = rng.normal(0, 12, (n, h, w, c))
    return np.clip(base[None, ..., None] + noise, 0, 255).round().astype(np.uint8)


def test_registries() -> None:
    assert decoders.names() == ["opencv", "pil"]
    assert sorted(resizers.names()) == sorted(RESIZES)
    with pytest.raises(KeyError, match="unknown system-noise resize 'pil_magic'; known: "):
        variant_from_name("pil-pil_magic")
    with pytest.raises(KeyError, match="unknown system-noise decoder 'ffmpeg'; known: opencv"):
        variant_from_name("ffmpeg-pil_bilinear")
    with pytest.raises(ValueError, match="not of the form DECODER-RESIZE"):
        variant_from_name("pil")
    assert variant_from_name("opencv-pil_bilinear") == Variant("opencv", "pil_bilinear")


def test_grids() -> None:
    sweep = variant_grid("sweep")
    assert [v.name for v in sweep] == [f"pil-{r}" for r in RESIZES] + ["opencv-pil_bilinear"]
    full = variant_grid("full")
    assert len(full) == 22 and len({v.name for v in full}) == 22
    assert {v.name for v in sweep} <= {v.name for v in full}
    with pytest.raises(ValueError, match="unknown system-noise grid 'all'; known: sweep, full"):
        variant_grid("all")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_every_variant_has_the_input_size(channels: int, fmt: str) -> None:
    images = textured(2, 12, 10, channels)
    variants, out = system_noise(images, (24, 20), fmt, 80, "full")
    assert out.shape == (22, 2, 12, 10, channels) and out.dtype == np.uint8
    for v, result in zip(variants, out, strict=True):
        assert np.abs(result.astype(int) - images).mean() < 10, v.name


@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_is_lossless(channels: int) -> None:
    image = textured(1, 9, 7, channels)[0]
    data = encode_image(image, "png")
    for name in decoders.names():
        np.testing.assert_array_equal(decoders.get(name)(data, channels), image)
    big = store_image(image, 18, "png")
    upsampled = resizers.get("pil_bicubic")(image, (18, 18))
    np.testing.assert_array_equal(decoders.get("opencv")(big, channels), upsampled)


def test_unchanged_size_and_png_give_the_clean_image_for_every_variant() -> None:
    images = textured(3, 8, 8, 3)
    _, out = system_noise(images, 8, "png", variants="full")
    for result in out:
        np.testing.assert_array_equal(result, images)


def test_pil_and_opencv_resizers_differ_but_stay_close() -> None:
    images = textured(4, 16, 16, 3)
    pairs = [("pil_bilinear", "opencv_linear"), ("pil_bicubic", "opencv_cubic")]
    pairs += [("pil_lanczos", "opencv_lanczos4"), ("pil_nearest", "opencv_area")]
    for pil, opencv in pairs:
        chosen = [Variant("pil", pil), Variant("pil", opencv)]
        _, (a, b) = system_noise(images, 40, "png", variants=chosen)
        diff = np.abs(a.astype(int) - b)
        assert diff.max() > 0, (pil, opencv)
        assert diff.mean() < 6, (pil, opencv, diff.mean())


def test_decoders_agree_to_a_grey_level() -> None:
    # both wrap libjpeg-turbo here; another build may round differently, so allow one level
    image = textured(1, 32, 32, 3)[0]
    data = encode_image(image, "jpeg", 60)
    a, b = decoders.get("pil")(data, 3), decoders.get("opencv")(data, 3)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_jpeg_quality_controls_the_error() -> None:
    images = textured(4, 16, 16, 3)
    errors = []
    for q in (95, 50, 10):
        _, out = system_noise(images, 32, "jpeg", q, [Variant("pil", "pil_bilinear")])
        errors.append(np.abs(out[0].astype(int) - images).mean())
    assert errors[0] < errors[1] < errors[2]


def test_deterministic() -> None:
    images = textured(3, 16, 16, 1)
    a = system_noise(images, 32, "jpeg", 75, "sweep")[1]
    np.testing.assert_array_equal(a, system_noise(images, 32, "jpeg", 75, "sweep")[1])


def test_bad_arguments() -> None:
    images = textured(1, 8, 8, 3)
    with pytest.raises(ValueError, match="unknown storage format 'gif'; known: jpeg, png"):
        system_noise(images, 16, "gif")
    with pytest.raises(ValueError, match="JPEG quality must be an integer in 1-100, got 0"):
        system_noise(images, 16, "jpeg", 0)
    with pytest.raises(ValueError, match="stored_size must be a positive int"):
        system_noise(images, 0, "jpeg")
    with pytest.raises(ValueError, match="uint8 N x H x W x C with C = 1 or 3"):
        system_noise(images.astype(np.float32), 16, "jpeg")
    with pytest.raises(KeyError, match="unknown system-noise decoder 'ffmpeg'"):
        system_noise(images, 16, "jpeg", variants=[Variant("ffmpeg", "pil_bilinear")])


def write_table(tmp_path, channels: int = 3):
    clean = ImageSet(
        images=textured(4, 8, 8, channels),
        labels=np.array([1, 0, 1, 0], np.int16),
        index=np.array([6, 2, 4, 0], np.int64),
        class_names=["a", "b"],
        source_checksum="xyz",
    )
    path = tmp_path / "test.parquet"
    write_images(clean, path)
    return clean, path


@pytest.mark.parametrize("channels", [1, 3])
def test_system_noise_stage(tmp_path, channels: int) -> None:
    clean, src = write_table(tmp_path, channels)
    out = tmp_path / "noisy" / "system.parquet"
    argv = ["--input", str(src), "--stored-size", "16", "--format", "jpeg", "--quality", "70"]
    system_stage.main([*argv, "--out", str(out)])

    table = pq.read_table(out)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["channels"] == str(channels) and meta["source_checksum"] == "xyz"
    assert table.column_names == ["index", "label", "image", "variant", "decoder", "resize"]
    assert table.num_rows == 12 * 4
    names = [v.name for v in variant_grid("sweep")]
    assert table.column("variant").to_pylist() == [n for n in names for _ in range(4)]
    assert table.column("decoder").to_pylist()[-4:] == ["opencv"] * 4
    assert table.column("resize").to_pylist()[:4] == ["pil_nearest"] * 4
    assert table.column("index").to_pylist() == [0, 2, 4, 6] * 12

    order = np.argsort(clean.index)
    _, expected = system_noise(clean.images[order], 16, "jpeg", 70, "sweep")
    np.testing.assert_array_equal(read_images(out).images, expected.reshape(48, 8, 8, channels))

    again = tmp_path / "again.parquet"
    system_stage.main([*argv, "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()


def test_system_noise_stage_full_grid_and_subset(tmp_path) -> None:
    _, src = write_table(tmp_path)
    out = tmp_path / "full.parquet"
    system_stage.main(
        ["--input", str(src), "--stored-size", "8", "--format", "png", "--grid", "full"]
        + ["--max-images", "2", "--out", str(out)]
    )
    table = pq.read_table(out)
    assert table.num_rows == 22 * 2
    assert set(table.column("index").to_pylist()) == {0, 2}


def test_system_noise_stage_errors(tmp_path) -> None:
    _, src = write_table(tmp_path)
    out = tmp_path / "o.parquet"
    base = ["--input", str(src), "--out", str(out)]
    with pytest.raises(SystemExit, match="--stored-size must be >= 1, got 0"):
        system_stage.main([*base, "--stored-size", "0", "--format", "jpeg"])
    with pytest.raises(SystemExit, match="--quality must be in 1-100, got 101"):
        system_stage.main([*base, "--stored-size", "16", "--format", "jpeg", "--quality", "101"])
    with pytest.raises(SystemExit):
        system_stage.main([*base, "--stored-size", "16", "--format", "gif"])
    with pytest.raises(SystemExit):
        system_stage.main([*base, "--stored-size", "16", "--format", "png", "--grid", "all"])
    assert not out.exists()
