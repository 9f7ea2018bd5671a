"""``ClatConfig``: the parameters of CLAT fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass

from robustlab.training.clat.criticality import SELECTIONS


@dataclass(frozen=True)
class ClatConfig:
    """CLAT fine-tuning after a pretraining run.

    ``lam``: weight of the feature term in Eq. 9 (the paper gives no value). ``k``: layers to
    fine-tune, a count (>= 1) or a fraction of the layers (< 1; the paper uses about 5 %).
    ``reselect_every`` R: criticality is measured and (``dynamic``, ``random``) layers are
    reselected at CLAT epochs 1, R + 1, 2R + 1, ... (Algorithm 1's ``epoch % R == 1``; for
    R = 1 every epoch). ``selection``: dynamic | static (first selection kept) | random.
    ``eps``, ``steps``, ``step_size`` (relative to eps): the PGD of the criticality measurement
    and of the feature-space inner maximisation; ``fast``: the inner maximisation is FGSM with
    a random start and a step of 1.25 eps ("CLAT (fast)"). ``lr``, ``warmup_epochs``: the
    fine-tuning schedule (the run's schedule type). ``criticality_batch``: size of the fixed
    training batch the criticality is measured on. ``freeze_bn_stats``: batch norms stay in
    eval mode (their running statistics are neither used nor updated), so everything outside
    the selected layers is frozen; with False they update in every forward pass.
    """

    epochs: int = 10
    lam: float = 0.1
    k: float = 0.05
    reselect_every: int = 10
    selection: str = "dynamic"
    fast: bool = False
    eps: float = 0.03
    steps: int = 10
    step_size: float = 0.007 / 0.03
    lr: float = 0.01
    warmup_epochs: float = 0.0
    criticality_batch: int = 64
    freeze_bn_stats: bool = True
    select_from: str = "all"  # all | conv

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.reselect_every < 1 or self.criticality_batch < 1:
            raise ValueError("clat epochs, reselect_every and criticality_batch must be >= 1")
        if self.selection not in SELECTIONS:
            raise ValueError(
                f"clat selection must be one of {', '.join(SELECTIONS)}, not {self.selection!r}"
            )
        if not 0 < self.eps <= 1 or self.steps < 1 or self.step_size <= 0:
            raise ValueError(
                f"clat needs eps in (0, 1], steps >= 1, step_size > 0; got {self.eps}, "
                f"{self.steps}, {self.step_size}"
            )
        if self.select_from not in ("all", "conv"):
            raise ValueError(f"clat select_from must be all or conv, not {self.select_from!r}")
        if self.k <= 0 or self.lam < 0 or self.lr <= 0:
            raise ValueError(
                f"clat needs k > 0, lam >= 0, lr > 0; got {self.k}, {self.lam}, {self.lr}"
            )
