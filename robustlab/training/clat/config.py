"""``ClatConfig``: the parameters of CLAT fine-tuning (docs/clat.md gives the paper's words
behind each default)."""

from __future__ import annotations

from dataclasses import dataclass

from robustlab.training.clat.criticality import SELECTIONS
from robustlab.training.clat.layers import SELECT_FROM

CE_ON = ("clean", "adversarial")
FEATURE_LOSSES = ("raw", "relative")
BN_MODES = ("frozen", "train")


def scaled_period(epochs: int) -> int:
    """The reselection period scaled from CLAT's 50 epochs with reselection every 10: a fifth
    of the CLAT epochs, rounded, at least 1 (50 -> 10, 10 -> 2, 3 -> 1)."""
    return max(1, round(epochs / 5))


@dataclass(frozen=True)
class ClatConfig:
    """CLAT fine-tuning after a pretraining run.

    Paper settings: ``lam`` weight of the feature term L_C in Eq. 9 (not given in the paper):
    a number, or ``"auto"``: lam = CE / L_C on a validation batch of ``calibration_batch``
    images at CLAT's start (:func:`robustlab.training.clat.calibrate_lambda`). ``k``: layers
    fine-tuned, a count (>= 1) or a fraction of the candidates (< 1, rounded up, at least one;
    the paper uses about 5 %). ``reselect_every`` R: criticality is measured on a fresh
    training batch of ``criticality_batch`` images and the layers are reselected at CLAT
    epochs 1, R + 1, 2R + 1, ... (Algorithm 1's ``epoch % 10 == 1``); None: scaled from the
    paper (:func:`scaled_period`). ``selection``: dynamic | static (first selection kept) |
    random. ``select_from``: the candidate layers (main | conv | all, see
    :mod:`robustlab.training.clat.layers`). ``eps``, ``steps``, ``step_size`` (relative to
    eps): the PGD of the criticality measurement and of the feature-space inner maximisation;
    ``fast``: FGSM with a random start and a step of 1.25 eps ("CLAT (fast)").
    ``max_trainable_share``: only candidates holding at most this share of the model's
    parameters are selected (not in the paper, whose deep models never come near it; in a
    10-layer network one convolution can hold 40 % of the weights).

    Variants the paper does not state: ``ce_on`` clean (Eq. 9's CE(F(x), y)) | adversarial
    (CE on x + delta*); ``feature_loss`` raw (Eq. 8) | relative (each layer's distance divided
    by its clean feature norm); ``bn`` frozen (batch norms in eval mode, their statistics
    neither used from the batch nor updated: everything outside the selected layers is
    frozen, as the paper's "freezing the remaining model") | train; ``lr`` and
    ``warmup_epochs``: the fine-tuning schedule (the run's schedule type).
    """

    epochs: int = 10
    lam: float | str = "auto"
    calibration_batch: int = 256
    k: float = 0.05
    reselect_every: int | None = None
    selection: str = "dynamic"
    select_from: str = "main"
    fast: bool = False
    eps: float = 0.03
    steps: int = 10
    step_size: float = 0.007 / 0.03
    lr: float = 0.01
    warmup_epochs: float = 0.0
    criticality_batch: int = 64
    bn: str = "frozen"
    ce_on: str = "clean"
    feature_loss: str = "raw"
    max_trainable_share: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.criticality_batch < 1 or self.calibration_batch < 1:
            raise ValueError("clat epochs, criticality_batch and calibration_batch must be >= 1")
        if self.reselect_every is not None and self.reselect_every < 1:
            raise ValueError(
                f"clat reselect_every must be >= 1 or null (scaled), got {self.reselect_every}"
            )
        for key, value, allowed in (
            ("selection", self.selection, SELECTIONS),
            ("select_from", self.select_from, SELECT_FROM),
            ("bn", self.bn, BN_MODES),
            ("ce_on", self.ce_on, CE_ON),
            ("feature_loss", self.feature_loss, FEATURE_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f"clat {key} must be one of {', '.join(allowed)}, not {value!r}")
        if not 0 < self.eps <= 1 or self.steps < 1 or self.step_size <= 0:
            raise ValueError(
                f"clat needs eps in (0, 1], steps >= 1, step_size > 0; got {self.eps}, "
                f"{self.steps}, {self.step_size}"
            )
        if isinstance(self.lam, str):
            if self.lam != "auto":
                raise ValueError(f"clat lam must be a number >= 0 or 'auto', not {self.lam!r}")
        elif self.lam < 0:
            raise ValueError(f"clat lam must be >= 0 or 'auto', got {self.lam}")
        if not 0 < self.max_trainable_share <= 1:
            raise ValueError(
                f"clat max_trainable_share must be in (0, 1], got {self.max_trainable_share}"
            )
        if self.k <= 0 or self.lr <= 0:
            raise ValueError(f"clat needs k > 0 and lr > 0; got {self.k}, {self.lr}")

    @property
    def period(self) -> int:
        """The reselection period R in CLAT epochs."""
        return self.reselect_every or scaled_period(self.epochs)

    @property
    def freeze_bn_stats(self) -> bool:
        return self.bn == "frozen"
