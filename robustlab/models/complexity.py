"""Size accounting in one place: parameters, trainable parameters and multiply-accumulates (MACs).

MAC convention (the one of the RobustResNet and RobustART tables, and of fvcore):

- ``nn.Conv2d``: ``output elements x in_channels / groups x kh x kw``;
- ``nn.Linear``: ``output elements x in_features`` (applies to any leading shape, so token-wise
  and token-mixing layers of Transformers and MLP-Mixers are counted exactly);
- attention: ``q @ k^T`` and ``attn @ v``, ``tokens^2 x dim`` each, reported by the attention
  module itself through an ``extra_macs(inputs, output) -> int`` method (any module may define
  one to declare matrix products that are not Conv2d or Linear layers);
- not counted: bias additions, normalisation, activations, pooling, softmax, residual sums and
  the channel scaling of squeeze-and-excitation (all linear in the activations' size, together
  typically < 2 % of the total for CNNs).
"""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one C x H x W input (convention above).

    Hook-based: the hooks see the real output shapes, so any architecture built from these
    layers is counted exactly. Works on models built on the ``meta`` device (no memory, no
    compute), which is how the size of the 100M+ parameter presets is checked cheaply.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        total += output.numel() * per_output

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    def extra_hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        total += int(module.extra_macs(inputs, output))

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
        if callable(getattr(module, "extra_macs", None)):
            handles.append(module.register_forward_hook(extra_hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return int(total)


def model_size(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    """``{"params", "trainable_params", "macs"}`` of ``model`` on one C x H x W input."""
    return {
        "params": count_params(model),
        "trainable_params": count_params(model, trainable_only=True),
        "macs": count_macs(model, input_shape),
    }
