"""CLAT — criticality-leveraged adversarial fine-tuning.

``forward_order_layers`` numbers the Conv2d/Linear layers, ``measure_criticality`` computes
Eq. 5-6 on one batch, ``select_layers`` picks the layers, ``ClatObjective`` is Eq. 8-9 and
``fit_clat`` runs Algorithm 1 with checkpoints.
"""

from robustlab.training.clat.config import ClatConfig
from robustlab.training.clat.criticality import (
    criticality_indices,
    feature_weakness,
    layer_count,
    measure_criticality,
    select_layers,
    top_k,
)
from robustlab.training.clat.finetune import (
    ClatResult,
    fit_clat,
    freeze_all_but,
    is_selection_epoch,
)
from robustlab.training.clat.layers import FeatureTap, Layer, forward_order_layers
from robustlab.training.clat.objective import ClatObjective

__all__ = [
    "ClatConfig",
    "ClatObjective",
    "ClatResult",
    "FeatureTap",
    "Layer",
    "criticality_indices",
    "feature_weakness",
    "fit_clat",
    "forward_order_layers",
    "freeze_all_but",
    "is_selection_epoch",
    "layer_count",
    "measure_criticality",
    "select_layers",
    "top_k",
]
