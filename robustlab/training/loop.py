"""The training loop: dense and explicit, one function a reader follows in one sitting.

Resumable and deterministic on CPU: the shuffle order, mixup/cutmix draws and attack noise of
epoch ``e`` come from a generator seeded with ``(seed, e)``, and the learning rate is a pure
function of the step, so a run restarted from the checkpoint of epoch ``e`` continues exactly
as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from robustlab.data.subset import stratified_subset
from robustlab.evaluation import predict, robust_predict
from robustlab.models.complexity import count_params
from robustlab.noise.adversarial import PGDLinf
from robustlab.training.checkpoint import checkpoint_state, load_checkpoint, save_checkpoint
from robustlab.training.config import TrainConfig
from robustlab.training.ema import EMA
from robustlab.training.fingerprint import fingerprint
from robustlab.training.modes import eval_mode, set_train_mode
from robustlab.training.optim import build_optimizer, learning_rate
from robustlab.training.precision import resolve_amp
from robustlab.training.strategy import TrainingStrategy
from robustlab.training.targets import hard_labels, training_targets
from robustlab.training.techniques import Technique

__all__ = ["TrainConfig", "epoch_generator", "fit", "learning_rate", "train_epoch", "validate"]

Data = tuple[torch.Tensor, torch.Tensor]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator behind epoch ``epoch``'s shuffle, mixing and attack noise."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.preserve_format


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    """Number of logits, from one forward pass on one input (eval mode, no statistics change)."""
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model):
        return int(model(x[:1].to(device)).shape[1])


def train_epoch(
    model: nn.Module,
    train: Data,
    technique: Technique,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    generator: torch.Generator,
    device: torch.device,
    ema: EMA | None = None,
    num_classes: int | None = None,
    freeze_bn_stats: bool = False,
    progress: bool = True,
    desc: str = "epoch",
) -> dict[str, float]:
    """One pass over ``train`` (epoch ``epoch`` of ``config.epochs``); returns the epoch's
    ``lr`` (last step), ``train_loss``, ``train_accuracy`` (clean inputs) and
    ``train_adv_accuracy`` (the technique's perturbed inputs; NaN for clean techniques)."""
    x_train, y_train = train
    n = len(x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    use_amp = resolve_amp(config.amp, device) == "bf16"
    fmt = memory_format(config)
    order = torch.randperm(n, generator=generator)
    set_train_mode(model, freeze_bn_stats)
    loss_sum, clean_correct, adv_correct, seen = 0.0, 0, 0, 0
    lr = config.lr
    bar = tqdm(
        range(steps_per_epoch),
        desc=f"{desc} {epoch}/{config.epochs}",
        disable=not progress,
        leave=False,
    )
    for step in bar:
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        x = x_train[idx].to(device, memory_format=fmt)
        y = y_train[idx].to(device)
        lr = learning_rate(config, ((epoch - 1) * steps_per_epoch + step) / total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if num_classes is not None:
            x, y = training_targets(x, y, config, num_classes, generator)
        labels = hard_labels(y)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            clean_logits = None
            if not technique.computes_clean_logits:
                with torch.no_grad(), eval_mode(model):
                    clean_logits = model(x)
            out = technique.step(model, x, y, generator)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        technique.after_step(model)
        if ema is not None:
            ema.update(model)
        clean = out.clean_logits if clean_logits is None else clean_logits
        loss_sum += float(out.loss.detach()) * len(labels)
        clean_correct += int((clean.argmax(1) == labels).sum())
        adv_correct += int((out.logits.argmax(1) == labels).sum())
        seen += len(labels)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * clean_correct / seen:.1f}")
    return {
        "lr": lr,
        "train_loss": loss_sum / seen,
        "train_accuracy": 100.0 * clean_correct / seen,
        "train_adv_accuracy": 100.0 * adv_correct / seen if technique.adversarial else math.nan,
    }


def validate(
    model: nn.Module, val: Data, config: TrainConfig, seed: int, epoch: int, device: torch.device
) -> dict[str, float]:
    """Clean accuracy on ``val`` and PGD accuracy on its fixed subset of ``val_pgd_size``
    images (all when 0), in fp32 and eval mode; the attack noise is seeded by the epoch."""
    x_val, y_val = val
    model.eval()
    pred = predict(model, x_val, device=device, batch_size=config.eval_batch_size)
    if 0 < config.val_pgd_size < len(y_val):
        keep = torch.from_numpy(stratified_subset(y_val.numpy(), config.val_pgd_size, seed=0))
        x_val, y_val = x_val[keep], y_val[keep]
    adv = robust_predict(
        model,
        x_val,
        y_val,
        PGDLinf(steps=config.val_pgd_steps, step_size=2.5 / config.val_pgd_steps),
        config.val_pgd_eps,
        generator=epoch_generator(seed, -epoch),
        device=device,
        batch_size=config.eval_batch_size,
    )
    return {
        "val_accuracy": 100.0 * float((pred == val[1]).float().mean()),
        "val_pgd_accuracy": 100.0 * float((adv == y_val).float().mean()),
    }


def resume_point(checkpoint: str | os.PathLike[str] | None, identity: str) -> Path | None:
    """The checkpoint to resume from: None when absent or written by another run (different
    parameters or data); a stale one is reported and later overwritten."""
    if checkpoint is None or not Path(checkpoint).exists():
        return None
    if checkpoint_state(checkpoint).get("fingerprint") != identity:
        print(f"{checkpoint}: written by a run with other inputs; starting afresh", file=sys.stderr)
        return None
    return Path(checkpoint)


def fit(
    model: nn.Module,
    train: Data,
    val: Data,
    technique: Technique,
    config: TrainConfig,
    seed: int,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    strategy: TrainingStrategy | None = None,
) -> list[dict]:
    """Train ``model`` in place with ``technique``; return one history row per epoch.

    With ``checkpoint``, the state is saved after every epoch and a run finding a checkpoint of
    the same inputs resumes after its last completed epoch. ``on_epoch_end(epoch, weights)`` is
    called after validation and before the checkpoint is written (so work it does is redone if
    the job dies in between); ``weights`` is the model that is validated: the EMA model when
    ``config.ema_decay`` > 0. With EMA the model ends holding the averaged weights.
    ``strategy`` (default: plain training) hooks fine-tuning methods such as CLAT into the
    loop (:class:`robustlab.training.strategy.TrainingStrategy`).
    """
    strategy = strategy or TrainingStrategy()
    device = device or torch.device("cpu")
    model.to(device=device, memory_format=memory_format(config))
    ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    meta = {
        "config": config,
        "technique": [type(technique).__name__, technique.config()],
        "seed": seed,
    }
    extra = strategy.identity()
    identity = fingerprint(
        meta if extra is None else {**meta, **extra},
        contents={"x": train[0], "y": train[1], **strategy.identity_contents()},
        shapes=model.state_dict(),
    )
    history: list[dict] = []
    start_epoch = 1
    resume = resume_point(checkpoint, identity)
    if resume is not None:
        strategy.restore(model, checkpoint_state(resume))
    optimizer = build_optimizer(model, config)
    if resume is not None:
        last, history = load_checkpoint(resume, model, optimizer, ema)
        start_epoch = last + 1
    mixes = config.label_smoothing > 0 or config.mixes
    num_classes = num_classes_of(model, train[0]) if mixes else None

    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        if strategy.begin_epoch(model, epoch):
            optimizer = build_optimizer(model, config)
        step_technique = strategy.technique(technique)
        run_epoch = strategy.epoch_offset + epoch
        stats = train_epoch(
            model,
            train,
            step_technique,
            config,
            optimizer,
            epoch,
            epoch_generator(seed, run_epoch),
            device,
            ema=ema,
            num_classes=num_classes,
            freeze_bn_stats=strategy.freeze_bn_stats,
            progress=progress,
            desc=strategy.desc,
        )
        weights = ema.model if ema is not None else model
        history.append(
            {
                "epoch": run_epoch,
                **stats,
                **validate(weights, val, config, seed, run_epoch, device),
                "trainable_params": count_params(model, trainable_only=True),
                **strategy.epoch_columns(model),
                "seconds": time.perf_counter() - started,
            }
        )
        if on_epoch_end is not None:
            on_epoch_end(run_epoch, weights)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                model,
                optimizer,
                epoch,
                history,
                ema,
                {**strategy.state(), "fingerprint": identity},
            )
    if ema is not None:
        model.load_state_dict(ema.model.state_dict())
    model.eval()
    return history
