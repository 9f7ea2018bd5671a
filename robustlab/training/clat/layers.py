"""CLAT's candidate layers, numbered in forward order, and a tap on their outputs.

A "layer" f_i is one module whose output F_i(x) is taken before any batch norm or activation
that follows it. Which modules are candidates (``select_from``):

- ``main`` (default): the main-path convolutions: every Conv2d except shortcut / downsample
  convolutions (a module path with a part named ``shortcut``, ``downsample`` or ``skip``) and
  the convolutions of squeeze-and-excitation modules; the classifier and all Linear layers are
  left out. CLAT's Table 3 lists no classifier and its indices, with Table 6's RN18 count (one
  3x3 256->256 convolution), fit a numbering of main-path convolutions only. A network with
  fewer than two such convolutions (ViT, MLP-Mixer: only the patch embedding) takes the Linear
  layers of its MLP blocks (a module path with a part containing ``mlp``) instead; the paper
  covers CNNs only, so this is the library's choice for transformers;
- ``conv``: every Conv2d (shortcuts and SE convolutions too);
- ``all``: every Conv2d and Linear (classifier and SE layers too).

Candidates are numbered 1..n in the order in which one forward pass first calls them (forward
hooks), so the weakness chain W_{i-1} of Eq. 6 runs along the same candidates; a module that is
never called is no candidate, and a module called twice keeps the number of its first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robustlab.models.layers import SqueezeExcite
from robustlab.training.modes import eval_mode

LAYER_TYPES = (nn.Conv2d, nn.Linear)
SELECT_FROM = ("main", "conv", "all")
SIDE_PATH_NAMES = ("shortcut", "downsample", "skip")


@dataclass(frozen=True)
class Layer:
    """One layer: its 1-based forward-order ``index``, qualified ``name`` and ``module``."""

    index: int
    name: str
    module: nn.Module

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def _inside_se(model: nn.Module) -> set[nn.Module]:
    """Modules that belong to a squeeze-and-excitation block."""
    return {
        inner
        for module in model.modules()
        if isinstance(module, SqueezeExcite)
        for inner in module.modules()
    }


def _on_side_path(name: str) -> bool:
    return any(part in SIDE_PATH_NAMES for part in name.split("."))


def candidate_modules(model: nn.Module, select_from: str = "main") -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of the candidate layers, in definition order (see the module
    docstring for ``select_from``)."""
    if select_from not in SELECT_FROM:
        raise ValueError(
            f"clat select_from must be one of {', '.join(SELECT_FROM)}, not {select_from!r}"
        )
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
    if select_from == "all":
        return named
    convs = [(n, m) for n, m in named if isinstance(m, nn.Conv2d)]
    if select_from == "conv":
        return convs
    se = _inside_se(model)
    main = [(n, m) for n, m in convs if m not in se and not _on_side_path(n)]
    if len(main) >= 2:
        return main
    return [
        (n, m)
        for n, m in named
        if isinstance(m, nn.Linear) and any("mlp" in part for part in n.split("."))
    ]


def forward_order_layers(
    model: nn.Module, x: torch.Tensor, select_from: str = "main"
) -> list[Layer]:
    """The candidate layers of ``model`` in the order a forward pass on ``x`` calls them (eval
    mode, no gradient; batch-norm statistics are untouched)."""
    candidates = candidate_modules(model, select_from)
    names = {module: name for name, module in candidates}
    order: list[nn.Module] = []

    def record(module: nn.Module, _inputs, _output) -> None:
        if module not in order:
            order.append(module)

    handles = [module.register_forward_hook(record) for module in names]
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise ValueError(
            f"no candidate layer ({select_from!r}) runs in this model's forward pass; "
            "choose another clat select_from"
        )
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
