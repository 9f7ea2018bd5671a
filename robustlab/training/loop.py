"""The training loop: dense and explicit, one function a reader follows in one sitting.

Resumable and deterministic on CPU: the shuffle order and attack noise of epoch ``e`` come from a
generator seeded with ``(seed, e)``, and the learning rate is a pure function of the step, so a
run restarted from the checkpoint of epoch ``e`` continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from robustlab.evaluation import predict, robust_predict
from robustlab.noise.adversarial import PGDLinf
from robustlab.training.checkpoint import load_checkpoint, save_checkpoint


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyper-parameters of one run."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | multistep | constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for multistep
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    amp: str = "bf16"  # bf16 autocast for training steps (evaluation is always fp32) | none
    channels_last: bool = False
    val_pgd_eps: float = 0.1
    val_pgd_steps: int = 10
    eval_batch_size: int = 500
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if self.schedule not in ("cosine", "multistep", "constant"):
            raise ValueError(
                f"schedule must be cosine, multistep or constant, not {self.schedule!r}"
            )
        if self.amp not in ("bf16", "none"):
            raise ValueError(f"amp must be bf16 or none, not {self.amp!r}")


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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator behind epoch ``epoch``'s shuffle and attack noise."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    technique,
    config: TrainConfig,
    seed: int,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place with ``technique``; return one history row per epoch.

    With ``checkpoint``, the state is saved after every epoch and a run finding a checkpoint
    resumes after its last completed epoch.
    """
    device = device or torch.device("cpu")
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model.to(device=device, memory_format=memory_format)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    optimizer = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
    )
    history: list[dict] = []
    start_epoch = 1
    if checkpoint is not None and Path(checkpoint).exists():
        last, history = load_checkpoint(checkpoint, model, optimizer)
        start_epoch = last + 1

    x_train, y_train = train
    n = len(x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    use_amp = config.amp == "bf16"
    val_attack = PGDLinf(steps=config.val_pgd_steps, step_size=2.5 / config.val_pgd_steps)

    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        generator = epoch_generator(seed, epoch)
        order = torch.randperm(n, generator=generator)
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = x_train[idx].to(device, memory_format=memory_format)
            y = y_train[idx].to(device)
            lr = learning_rate(config, ((epoch - 1) * steps_per_epoch + step) / total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, logits = technique.loss(model, x, y, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")

        x_val, y_val = val
        model.eval()
        val_pred = predict(model, x_val, device=device, batch_size=config.eval_batch_size)
        val_adv = robust_predict(
            model,
            x_val,
            y_val,
            val_attack,
            config.val_pgd_eps,
            generator=epoch_generator(seed, -epoch),
            device=device,
            batch_size=config.eval_batch_size,
        )
        history.append(
            {
                "epoch": epoch,
                "lr": lr,
                "train_loss": loss_sum / seen,
                "train_accuracy": 100.0 * correct / seen,
                "val_accuracy": 100.0 * float((val_pred == y_val).float().mean()),
                "val_pgd_accuracy": 100.0 * float((val_adv == y_val).float().mean()),
                "seconds": time.perf_counter() - started,
            }
        )
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, epoch, history)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    model.eval()
    return history
