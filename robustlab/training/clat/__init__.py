"""CLAT — criticality-leveraged adversarial fine-tuning.

``forward_order_layers`` numbers the candidate layers (main-path convolutions by default),
``measure_criticality`` computes Eq. 5-6 on one batch, ``select_layers`` picks the layers,
``ClatObjective`` is Eq. 8-9, ``calibrate_lambda`` sets lambda for ``lam: auto`` and
``fit_clat`` runs Algorithm 1 through the library's training loop (``ClatStrategy``).
"""

from robustlab.training.clat.config import ClatConfig, scaled_period
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
    ClatStrategy,
    criticality_batch,
    fit_clat,
    freeze_all_but,
    is_selection_epoch,
)
from robustlab.training.clat.layers import (
    FeatureTap,
    Layer,
    candidate_modules,
    forward_order_layers,
)
from robustlab.training.clat.objective import ClatObjective, calibrate_lambda, layer_distances

__all__ = [
    "ClatConfig",
    "ClatObjective",
    "ClatResult",
    "ClatStrategy",
    "FeatureTap",
    "Layer",
    "calibrate_lambda",
    "candidate_modules",
    "criticality_batch",
    "criticality_indices",
    "feature_weakness",
    "fit_clat",
    "forward_order_layers",
    "freeze_all_but",
    "is_selection_epoch",
    "layer_count",
    "layer_distances",
    "measure_criticality",
    "scaled_period",
    "select_layers",
    "top_k",
]
