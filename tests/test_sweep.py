"""Architecture sweeps: reproducible, distinct, readable samples of a declared design space."""

from __future__ import annotations

import pytest
import torch

from robustlab.models import build_model
from robustlab.models.sweep import sample_architectures, space_size

SPACE = {
    "base": "robust_resnet",
    "depths": [[1, 2], [1, 2], [1, 2]],
    "widths": [[1, 2], [1, 2], [1]],
    "kernel_size": [3, 5],
    "block": ["basic", "bottleneck"],
    "image_size": [24, 28],
}


def test_same_seed_same_sample_and_different_seed_different_sample():
    first = sample_architectures(SPACE, 10, seed=0)
    assert sample_architectures(SPACE, 10, seed=0) == first
    assert sample_architectures(SPACE, 10, seed=1) != first
    assert len(first) == 10


def test_names_are_stable_and_spell_the_variant():
    sample = sample_architectures(SPACE, 3, seed=7)
    assert list(sample) == sorted(sample)
    for name, spec in sample.items():
        d = "-".join(map(str, spec["depths"]))
        w = "-".join(map(str, spec["widths"]))
        k, block, r = spec["kernel_size"], spec["block"], spec["input_resolution"]
        assert name == f"rrn_d{d}_w{w}_k{k}_{block}_r{r}"
        assert spec["arch"] == "robust_resnet"
    # A name never depends on which other variants were drawn.
    assert "rrn_d1-2-1_w2-2-1_k3_basic_r28" in sample_architectures(
        SPACE, space_size(SPACE), seed=0
    )


def test_sampling_is_without_replacement_and_bounded_by_the_space():
    assert space_size(SPACE) == 8 * 4 * 2 * 2 * 2
    everything = sample_architectures(SPACE, space_size(SPACE), seed=3)
    assert len(everything) == space_size(SPACE)
    with pytest.raises(ValueError, match="space of 256"):
        sample_architectures(SPACE, space_size(SPACE) + 1, seed=3)


def test_per_stage_kernels_fixed_options_and_float_widths():
    space = {
        "base": "robust_resnet",
        "widths": [[0.5], [1.5], [1]],
        "kernel_size": [[3, 5], [3], [7]],
        "fixed": {"se": "none"},
    }
    sample = sample_architectures(space, 2, seed=0)
    assert set(sample) == {"rrn_w0p5-1p5-1_k3-3-7", "rrn_w0p5-1p5-1_k5-3-7"}
    assert all(spec["se"] == "none" for spec in sample.values())


def test_bad_spaces_are_clear_errors():
    with pytest.raises(ValueError, match="unknown sweep space keys"):
        sample_architectures({"base": "wrn", "depth": [1]}, 1, 0)
    with pytest.raises(ValueError, match="base"):
        sample_architectures({"depths": [[1]]}, 1, 0)
    with pytest.raises(KeyError, match="robust_resnet_tiny"):
        sample_architectures({"base": "resnet_9000"}, 1, 0)
    with pytest.raises(ValueError, match="non-empty"):
        sample_architectures({"base": "wrn", "block": []}, 1, 0)


def test_sampled_variants_build_and_resize_data_inside_the_model():
    for spec in sample_architectures(SPACE, 4, seed=0).values():
        options = dict(spec)
        arch = options.pop("arch")
        model = build_model(arch, 10, 1, 28, **options)  # data stays 28 px
        assert model.input_resolution == spec["input_resolution"]
        assert model.eval()(torch.rand(1, 1, 28, 28)).shape == (1, 10)
