"""CLAT's layers: the network's Conv2d and Linear modules, numbered in forward order.

A "layer" f_i is one Conv2d or Linear module and F_i(x) is its output (before any batch norm or
activation that follows it). Layers are numbered 1..n in the order in which one forward pass
first calls them (found with forward hooks), so a shortcut convolution gets the number of the
moment the block runs it; a module that is never called is not a layer, and a module called
twice keeps the number of its first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robustlab.training.modes import eval_mode

LAYER_TYPES = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Layer:
    """One layer: its 1-based forward-order ``index``, qualified ``name`` and ``module``."""

    index: int
    name: str
    module: nn.Module

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def forward_order_layers(model: nn.Module, x: torch.Tensor) -> list[Layer]:
    """The Conv2d and Linear modules of ``model`` in the order a forward pass on ``x`` calls
    them (eval mode, no gradient; batch-norm statistics are untouched)."""
    names = {module: name for name, module in model.named_modules()}
    order: list[nn.Module] = []

    def record(module: nn.Module, _inputs, _output) -> None:
        if module not in order:
            order.append(module)

    handles = [
        m.register_forward_hook(record) for m in model.modules() if isinstance(m, LAYER_TYPES)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [Layer(i, names[m], m) for i, m in enumerate(order, start=1)]


class FeatureTap:
    """Within ``with``, ``outputs[j]`` holds the output of ``modules[j]`` from the latest
    forward pass (a copy, so an in-place activation after the layer cannot change it; it keeps
    its autograd graph when the pass records one)."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)
        self.outputs: list[torch.Tensor | None] = [None] * len(self.modules)
        self._handles: list = []

    def _hook(self, slot: int):
        def hook(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
            self.outputs[slot] = output.clone()

        return hook

    def __enter__(self) -> FeatureTap:
        self._handles = [m.register_forward_hook(self._hook(j)) for j, m in enumerate(self.modules)]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def features(self) -> list[torch.Tensor]:
        """The recorded outputs; an error if a layer did not run."""
        missing = [j for j, out in enumerate(self.outputs) if out is None]
        if missing:
            raise RuntimeError(f"layers {missing} produced no output in the forward pass")
        return list(self.outputs)  # type: ignore[arg-type]
