"""Perturbation sequences (robustlab.noise.stability) and the stages.perturb CLI."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robustlab.data.images import ImageSet, read_images, write_images
from robustlab.noise.stability import (
    is_noise_perturbation,
    ops,
    perturbation_names,
    perturbation_schedule,
    perturbation_sequence,
    size_class,
)
from stages import perturb as perturb_stage

REQUIRED = {
    "gaussian_noise",
    "shot_noise",
    "brightness",
    "translate",
    "rotate",
    "scale",
    "zoom_blur",
}
NOISE = {"gaussian_noise", "shot_noise", "speckle_noise"}


def smooth_images(n: int, size: int, channels: int) -> np.ndarray:
    """Blobs on a gradient: smooth content whose distortion grows with the warp."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = []
    for i in range(n):
        cy, cx = 0.3 + 0.1 * (i % 4), 0.4 + 0.05 * (i % 3)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
        base = 0.2 + 0.3 * xx + 0.5 * blob
        planes = [base * (0.6 + 0.2 * k) for k in range(channels)]
        out.append(np.stack(planes, axis=-1))
    return np.rint(np.clip(np.array(out), 0, 1) * 255).astype(np.uint8)


def test_registry_has_the_required_perturbations() -> None:
    names = perturbation_names()
    assert set(names) >= REQUIRED and names == sorted(names)
    assert {n for n in names if is_noise_perturbation(n)} == NOISE


def test_unknown_name_lists_known() -> None:
    with pytest.raises(KeyError, match="unknown perturbation 'snowfall'; known: brightness"):
        perturbation_sequence("snowfall", np.zeros((1, 8, 8, 1), np.uint8), 3, 0)


@pytest.mark.parametrize(
    ("name", "length", "size", "expected"),
    [
        ("rotate", 4, 32, [0.0, 5.0, 10.0, 15.0]),
        ("scale", 3, 224, [1.0, 0.7, 0.4]),
        ("scale", 4, 28, [1.0, 0.9, 0.8, 0.7]),
        ("translate", 3, 32, [0.0, 0.125, 0.25]),
        ("gaussian_blur", 4, 32, [0.3, 0.45, 0.6, 0.75]),
        ("gaussian_noise", 3, 32, [np.nan, 0.02, 0.02]),
        ("shot_noise", 3, 224, [np.nan, 300.0, 300.0]),
    ],
)
def test_schedules(name: str, length: int, size: int, expected: list[float]) -> None:
    np.testing.assert_allclose(perturbation_schedule(name, length, size, size), expected)


def test_size_classes_and_bad_lengths() -> None:
    assert size_class(28, 28) == "small" and size_class(64, 32) == "small"
    assert size_class(224, 256) == "large"
    with pytest.raises(ValueError, match="no perturbation parameter table for 100x100"):
        perturbation_sequence("rotate", np.zeros((1, 100, 100, 3), np.uint8), 3, 0)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="length must be an integer >= 2"):
            perturbation_sequence("rotate", np.zeros((1, 8, 8, 3), np.uint8), bad, 0)


def test_bad_images_and_seed() -> None:
    with pytest.raises(ValueError, match="uint8 N x H x W x C with C = 1 or 3"):
        perturbation_sequence("rotate", np.zeros((1, 8, 8, 2), np.uint8), 3, 0)
    with pytest.raises(ValueError, match="uint8"):
        perturbation_sequence("rotate", np.zeros((1, 8, 8, 3), np.float32), 3, 0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        perturbation_sequence("gaussian_noise", np.zeros((1, 8, 8, 3), np.uint8), 3, -1)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_perturbation_shape_and_frame_zero(channels: int) -> None:
    images = smooth_images(3, 16, channels)
    for name in perturbation_names():
        seq = perturbation_sequence(name, images, 5, seed=1)
        assert seq.shape == (3, 5, 16, 16, channels) and seq.dtype == np.uint8, name
        if name == "gaussian_blur":  # least perturbed frame: sigma 0.3 px, not the clean image
            expected = ops.to_uint8(ops.gaussian_blur(ops.to_float(images), 0.3))
            np.testing.assert_array_equal(seq[:, 0], expected)
            rough = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
            assert not np.array_equal(perturbation_sequence(name, rough, 2, 0)[:, 0], rough)
        else:
            np.testing.assert_array_equal(seq[:, 0], images, err_msg=name)


def test_deterministic_and_seeded() -> None:
    images = smooth_images(4, 16, 3)
    for name in perturbation_names():
        a = perturbation_sequence(name, images, 4, seed=3)
        np.testing.assert_array_equal(a, perturbation_sequence(name, images, 4, seed=3))
        b = perturbation_sequence(name, images, 4, seed=4)
        assert np.array_equal(a, b) != is_noise_perturbation(name), name


def test_noise_of_an_image_does_not_depend_on_the_others() -> None:
    images = smooth_images(5, 16, 3)
    full = perturbation_sequence("gaussian_noise", images, 4, seed=7)
    np.testing.assert_array_equal(
        perturbation_sequence("gaussian_noise", images[:2], 4, 7), full[:2]
    )
    other = perturbation_sequence("shot_noise", images, 4, seed=7)
    assert not np.array_equal(other[:, 1:], full[:, 1:])  # the name enters the seed


@pytest.mark.parametrize(
    ("name", "sigma_levels"),
    [("gaussian_noise", 0.02 * 255), ("shot_noise", np.sqrt(128 / 255 / 700) * 255)],
)
def test_noise_frames_are_independent_draws_of_the_right_size(
    name: str, sigma_levels: float
) -> None:
    grey = np.full((2, 32, 32, 3), 128, np.uint8)
    seq = perturbation_sequence(name, grey, 6, seed=0).astype(np.float64)
    noisy = seq[:, 1:] - 128.0
    assert abs(noisy.std() - sigma_levels) < 0.05 * sigma_levels
    assert abs(noisy.mean()) < 0.2
    for j in range(1, 5):  # a fresh draw every frame, all around the same clean image
        assert not np.array_equal(seq[:, j], seq[:, j + 1])
        corr = np.corrcoef(noisy[:, j - 1].ravel(), noisy[:, j].ravel())[0, 1]
        assert abs(corr) < 0.05


def test_speckle_noise_scales_with_intensity() -> None:
    images = np.zeros((1, 32, 32, 1), np.uint8)
    images[:, :, 16:] = 200
    seq = perturbation_sequence("speckle_noise", images, 5, seed=0).astype(np.float64)
    assert (seq[:, 1:, :, :16] == 0).all()  # x + x * noise leaves black black
    assert abs((seq[:, 1:, :, 16:] - 200).std() - 0.05 * 200) < 1.0


@pytest.mark.parametrize(
    "name",
    ["brightness", "translate", "rotate", "tilt", "scale", "shear", "zoom_blur", "gaussian_blur"]
    + ["motion_blur"],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_schedule_distortion_grows(name: str, channels: int) -> None:
    images = smooth_images(4, 32, channels)
    seq = perturbation_sequence(name, images, 6, seed=0).astype(np.float64)
    distance = np.abs(seq - images[:, None].astype(np.float64)).mean(axis=(0, 2, 3, 4))
    assert (np.diff(distance) > 0).all(), (name, distance)


def test_translate_hand_computed() -> None:
    # 8 px wide, small table: 0.25 of the width at the last frame; L = 3 gives 0, 1, 2 px
    image = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1) + 1
    seq = perturbation_sequence("translate", image, 3, seed=0)
    for shift in (1, 2):
        expected = np.zeros_like(image[0])
        expected[:, shift:] = image[0, :, :-shift]
        np.testing.assert_array_equal(seq[0, shift], expected)


def test_geometric_matrices() -> None:
    image = (np.arange(9, dtype=np.uint8).reshape(1, 3, 3, 1) + 1) * 10
    rotated = ops.affine(image, ops.rotation_matrix(90, 3, 3))
    np.testing.assert_array_equal(rotated[0, ..., 0], np.rot90(image[0, ..., 0]))
    np.testing.assert_allclose(ops.tilt_homography(0.0, 8, 8), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(ops.scale_matrix(0.5, 5, 5), [[0.5, 0, 1], [0, 0.5, 1]])
    t = np.tan(np.radians(30))
    np.testing.assert_allclose(ops.shear_matrix(30, 5, 5), [[1, t, -2 * t], [0, 1, 0]])


def test_brightness_hand_computed() -> None:
    pixels = np.array([[[[150, 90, 30], [0, 0, 0], [250, 10, 10]]]], np.uint8)
    out = ops.to_uint8(ops.brightness(ops.to_float(pixels), 0.2))
    np.testing.assert_array_equal(out[0, 0], [[201, 121, 40], [51, 51, 51], [255, 10, 10]])
    grey = np.array([[[[100], [250]]]], np.uint8)
    np.testing.assert_array_equal(
        ops.to_uint8(ops.brightness(ops.to_float(grey), 0.2))[0, 0], [[151], [255]]
    )


def test_box_kernel_and_motion_blur() -> None:
    np.testing.assert_allclose(ops.box_kernel(1.0), [1.0])
    np.testing.assert_allclose(ops.box_kernel(2.0), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(ops.box_kernel(3.0), [1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="box length must be >= 1"):
        ops.box_kernel(0.5)
    row = np.zeros((1, 1, 5, 1))
    row[0, 0, 2] = 1.0
    np.testing.assert_allclose(ops.motion_blur(row, 2.0)[0, 0, :, 0], [0, 0.25, 0.5, 0.25, 0])


def test_zoom_blur_keeps_a_constant_image() -> None:
    images = np.full((2, 32, 32, 3), 77, np.uint8)
    seq = perturbation_sequence("zoom_blur", images, 5, seed=0)
    assert (seq == 77).all()


def write_table(tmp_path, n: int = 4, size: int = 8, channels: int = 3):
    rng = np.random.default_rng(0)
    clean = ImageSet(
        images=rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
        labels=np.array([1, 0, 1, 0, 1, 0][:n], np.int16),
        index=np.array([7, 3, 5, 1, 9, 11][:n], np.int64),
        class_names=["a", "b"],
        source_checksum="abc",
    )
    path = tmp_path / "test.parquet"
    write_images(clean, path)
    return clean, path


def test_perturb_stage(tmp_path) -> None:
    clean, src = write_table(tmp_path)
    out = tmp_path / "noisy" / "perturbation" / "gaussian_noise.parquet"
    argv = ["--input", str(src), "--perturbation", "gaussian_noise", "--length", "3"]
    perturb_stage.main([*argv, "--seed", "2", "--out", str(out)])

    table = pq.read_table(out)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["height"] == "8" and meta["channels"] == "3" and meta["source_checksum"] == "abc"
    assert table.column_names == ["index", "label", "image", "perturbation", "frame", "magnitude"]
    assert table.schema.field("frame").type == pa.int16()
    assert table.schema.field("perturbation").type == pa.string()
    assert table.schema.field("magnitude").type == pa.float64()
    assert table.column("index").to_pylist() == [1, 1, 1, 3, 3, 3, 5, 5, 5, 7, 7, 7]
    assert table.column("label").to_pylist() == [0] * 6 + [1] * 6
    assert table.column("frame").to_pylist() == [0, 1, 2] * 4
    np.testing.assert_allclose(table.column("magnitude").to_numpy(), [np.nan, 0.02, 0.02] * 4)

    order = np.argsort(clean.index)
    expected = perturbation_sequence("gaussian_noise", clean.images[order], 3, 2)
    np.testing.assert_array_equal(read_images(out).images, expected.reshape(12, 8, 8, 3))

    again = tmp_path / "again.parquet"
    perturb_stage.main([*argv, "--seed", "2", "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()
    assert not list(out.parent.glob("*.tmp"))


def test_perturb_stage_subsets(tmp_path) -> None:
    clean, src = write_table(tmp_path, n=6)
    base = ["--input", str(src), "--perturbation", "rotate", "--length", "2", "--seed", "0"]
    first = tmp_path / "first.parquet"
    perturb_stage.main([*base, "--max-images", "3", "--out", str(first)])
    assert pq.read_table(first).column("index").to_pylist() == [1, 1, 3, 3, 5, 5]
    strat = tmp_path / "strat.parquet"
    perturb_stage.main([*base, "--max-images", "2", "--subset", "stratified", "--out", str(strat)])
    labels = pq.read_table(strat).column("label").to_pylist()
    assert sorted(labels) == [0, 0, 1, 1]  # one image per class, two frames each


def test_perturb_stage_errors(tmp_path) -> None:
    _, src = write_table(tmp_path)
    out = tmp_path / "o.parquet"
    base = ["--input", str(src), "--seed", "0", "--out", str(out)]
    with pytest.raises(SystemExit, match="unknown --perturbation 'snow'; known: brightness"):
        perturb_stage.main([*base, "--perturbation", "snow", "--length", "3"])
    with pytest.raises(SystemExit, match="--length must be >= 2"):
        perturb_stage.main([*base, "--perturbation", "rotate", "--length", "1"])
    with pytest.raises(SystemExit, match="--max-images must be >= 1"):
        perturb_stage.main(
            [*base, "--perturbation", "rotate", "--length", "2", "--max-images", "0"]
        )
    with pytest.raises(SystemExit, match="--max-images 1: subset size 1 is smaller than"):
        perturb_stage.main(
            [*base, "--perturbation", "rotate", "--length", "2", "--max-images", "1"]
            + ["--subset", "stratified"]
        )
    big = ImageSet(np.zeros((1, 100, 100, 3), np.uint8), np.zeros(1, np.int16), np.zeros(1), ["a"])
    write_images(big, tmp_path / "big.parquet")
    with pytest.raises(
        SystemExit, match="big.parquet: no perturbation parameter table for 100x100"
    ):
        perturb_stage.main(
            ["--input", str(tmp_path / "big.parquet"), "--perturbation", "rotate", "--length", "2"]
            + ["--seed", "0", "--out", str(out)]
        )
    with pytest.raises(FileNotFoundError, match="missing.parquet: no such image table"):
        perturb_stage.main(
            ["--input", str(tmp_path / "missing.parquet"), "--perturbation", "rotate"]
            + ["--length", "2", "--seed", "0", "--out", str(out)]
        )
    assert not out.exists()
