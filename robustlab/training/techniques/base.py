"""What every training technique shares: the registry, the step output, the attack budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.registry import Registry

TECHNIQUES: Registry[type] = Registry("technique")


@dataclass
class StepOutput:
    """One training step's loss and logits.

    ``logits``: on the inputs the loss trains on (the adversarial ones for adversarial
    techniques); ``clean_logits``: on the clean inputs when the loss computes them anyway
    (None otherwise, and the loop measures clean accuracy with one extra forward pass).
    """

    loss: torch.Tensor
    logits: torch.Tensor
    clean_logits: torch.Tensor | None = None


class Technique:
    """A named training recipe: ``step`` turns a batch into the loss to minimise.

    ``y`` holds int64 labels (N,) or a target distribution (N, C) when label smoothing, mixup or
    cutmix is on; cross-entropy terms use it as given, attacks and margins use its labels.
    The loop calls ``after_step`` after every optimizer step (AWP restores the weights there).
    """

    adversarial: ClassVar[bool] = False  # trains on perturbed inputs
    computes_clean_logits: ClassVar[bool] = False  # StepOutput.clean_logits is always set

    def step(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None
    ) -> StepOutput:
        raise NotImplementedError

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits)`` of one batch, the model in train mode."""
        out = self.step(model, x, y, generator)
        return out.loss, out.logits

    def after_step(self, model: nn.Module) -> None:
        """Called after each optimizer step; nothing to do for most techniques."""

    def config(self) -> dict[str, Any]:
        """The technique's parameters (recorded in the model card)."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class AttackBudget:
    """L-inf budget of an inner maximisation: ``eps`` (pixel scale), ``steps``, ``step_size``
    (relative to eps, as for every robustlab attack) and ``random_start``."""

    eps: float = 0.1
    steps: int = 3
    step_size: float = 0.5
    random_start: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not 0 < self.eps <= 1:
            raise ValueError(f"{name} eps must be in (0, 1] (pixel scale), got {self.eps}")
        if self.steps < 1 or self.step_size <= 0:
            raise ValueError(
                f"{name} needs steps >= 1 and step_size > 0; got {self.steps}, {self.step_size}"
            )


def normal_start(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``x + 0.001 * N(0, 1)``: the start of TRADES' and MART's inner maximisation."""
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
    return x + 0.001 * noise
