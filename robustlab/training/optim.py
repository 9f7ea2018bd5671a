"""Optimizer construction and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlab.training.config import TrainConfig


def parameter_groups(
    model: nn.Module, weight_decay: float, bn_bias_weight_decay: bool = False
) -> list[dict]:
    """Trainable parameters in two groups: with weight decay, and without it (biases, 1-d
    parameters such as batch-norm scales; with ``bn_bias_weight_decay`` they are decayed too
    and the second group is empty, the variable RobustResNet studies). Frozen parameters
    (``requires_grad`` False) are left out, so the optimizer never touches them."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = not bn_bias_weight_decay and (param.ndim <= 1 or name.endswith(".bias"))
        (no_decay if exempt else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (optionally Nesterov) or AdamW over the model's trainable parameters."""
    groups = parameter_groups(model, config.weight_decay, config.bn_bias_weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.adam_betas)
    nesterov = config.optimizer == "sgd_nesterov" or config.nesterov
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov)


def learning_rate(config: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` = fraction of training done (0..1)."""
    epochs_done = progress * config.epochs
    if config.warmup_epochs > 0 and epochs_done < config.warmup_epochs:
        return config.lr * epochs_done / config.warmup_epochs
    if config.schedule == "cosine":
        return 0.5 * config.lr * (1 + math.cos(math.pi * progress))
    if config.schedule == "multistep":
        return config.lr * config.gamma ** sum(progress >= m for m in config.milestones)
    return config.lr
