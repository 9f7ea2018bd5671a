"""Architecture registry, shapes and exact size accounting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.models import ARCHITECTURES, build_model, count_macs, count_params
from robustlab.models.store import load_model, model_spec, save_weights
from robustlab.registry import UnknownNameError


@pytest.mark.parametrize("name", ["small_cnn", "preact_resnet18", "wrn_16_2"])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_every_small_architecture_maps_images_to_logits(name, channels, size):
    overrides = {"preact_resnet18": {"base_width": 4}}.get(name, {})
    model = build_model(name, num_classes=7, in_channels=channels, image_size=size, **overrides)
    out = model.eval()(torch.rand(2, channels, size, size))
    assert out.shape == (2, 7)
    assert model.family == "cnn"


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        build_model("resnet_9000", num_classes=10)
    message = str(err.value)
    assert "resnet_9000" in message
    for name in ("small_cnn", "preact_resnet18", "wrn_28_10"):
        assert name in message


def test_bad_override_names_the_architecture():
    with pytest.raises(TypeError, match="small_cnn"):
        build_model("small_cnn", 10, 1, 28, depth=3)


def test_wrn_depth_must_be_6n_plus_4():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        build_model("wrn", 10, depth=20)


def test_wrn_28_10_parameter_count_matches_the_paper():
    # RobustResNet's table: WRN-28-10 has 36.5M parameters and 5.20G MACs at 32x32x3.
    model = build_model("wrn_28_10", num_classes=10)
    params = count_params(model)
    assert abs(params - 36.5e6) / 36.5e6 < 0.01
    assert abs(count_macs(model, (3, 32, 32)) - 5.20e9) / 5.20e9 < 0.03


def test_mac_count_of_a_hand_computed_network():
    # conv 1->2, 3x3, pad 1 on 4x4: 2*4*4 outputs x 9 MACs = 288; linear 32->3: 96.
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 3))
    assert count_macs(net, (1, 4, 4)) == 288 + 96
    assert count_params(net) == (2 * 9 + 2) + (32 * 3 + 3)


def test_trainable_params_count_only_unfrozen_ones():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    for p in net[0].parameters():
        p.requires_grad_(False)
    assert count_params(net, trainable_only=True) == 3 * 2 + 2
    assert count_params(net) == 4 * 3 + 3 + 3 * 2 + 2


def test_normalisation_lives_inside_the_model():
    model = build_model("small_cnn", 10, 1, 28, mean=[0.3], std=[0.2])
    x = torch.full((1, 1, 28, 28), 0.5)
    assert torch.allclose(model.normalize(x), torch.full_like(x, 1.0))


def test_saved_model_reloads_with_identical_outputs(tmp_path):
    import json

    spec = model_spec("small_cnn", 10, 1, 28, [0.3], [0.2], {"width": 4, "hidden": 8})
    model = build_model("small_cnn", 10, 1, 28, mean=[0.3], std=[0.2], width=4, hidden=8).eval()
    save_weights(model, tmp_path / "model.safetensors")
    (tmp_path / "card.json").write_text(json.dumps(spec))
    loaded = load_model(tmp_path / "model.safetensors")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert not loaded.training


def test_registry_names_are_sorted_and_complete():
    assert ARCHITECTURES.names() == sorted(ARCHITECTURES.names())
    assert "wrn_34_10" in ARCHITECTURES
