"""Saving and loading trained models: safetensors weights plus the card that rebuilds them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from robustlab.io import atomic_path
from robustlab.models import build_model
from robustlab.models.layers import Classifier


def save_weights(model: Classifier, path: str | os.PathLike[str]) -> None:
    """Write the model's state dict as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def model_spec(
    arch: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    mean: list[float],
    std: list[float],
    arch_config: dict[str, Any],
) -> dict[str, Any]:
    """The card entries that rebuild a model with :func:`load_model`."""
    return {
        "arch": arch,
        "arch_config": arch_config,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "mean": mean,
        "std": std,
    }


def build_from_spec(spec: dict[str, Any]) -> Classifier:
    """An untrained model as described by a card."""
    return build_model(
        spec["arch"],
        spec["num_classes"],
        spec["in_channels"],
        spec["image_size"],
        mean=spec["mean"],
        std=spec["std"],
        **spec.get("arch_config", {}),
    )


def load_model(
    weights: str | os.PathLike[str], card: str | os.PathLike[str] | None = None
) -> Classifier:
    """Load a trained model (eval mode) from its weights and ``card.json`` (default: beside it)."""
    weights = Path(weights)
    card_path = Path(card) if card is not None else weights.with_name("card.json")
    for p in (weights, card_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing; run the train stage for this model first")
    model = build_from_spec(json.loads(card_path.read_text()))
    model.load_state_dict(load_file(str(weights)))
    return model.eval()
