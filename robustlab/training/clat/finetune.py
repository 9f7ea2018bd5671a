"""CLAT fine-tuning (CLAT, Algorithm 1), resumable like :func:`robustlab.training.fit`.

At CLAT epochs 1, R + 1, 2R + 1, ... the criticality of every layer is measured on a fixed
training batch and the selection is made (dynamic / static / random); only the selected
layers' parameters are trainable and handed to a fresh optimizer (so frozen weights get no
decay or momentum and stay bit-identical). Epochs are numbered globally (``epoch_offset`` +
CLAT epoch) for the history, the criticality table and the per-epoch generators, so curves of
the pretraining run and of CLAT line up.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from robustlab.models.complexity import count_params
from robustlab.training.checkpoint import checkpoint_state, load_checkpoint, save_checkpoint
from robustlab.training.clat.config import ClatConfig
from robustlab.training.clat.criticality import layer_count, measure_criticality, select_layers
from robustlab.training.clat.layers import Layer, forward_order_layers
from robustlab.training.clat.objective import ClatObjective
from robustlab.training.config import TrainConfig
from robustlab.training.ema import EMA
from robustlab.training.fingerprint import fingerprint
from robustlab.training.loop import (
    Data,
    epoch_generator,
    memory_format,
    num_classes_of,
    resume_point,
    train_epoch,
    validate,
)
from robustlab.training.optim import build_optimizer


@dataclass
class ClatResult:
    """History rows (one per CLAT epoch), criticality rows (one per layer and measurement),
    the layers, and the final selection (0-based positions)."""

    history: list[dict]
    criticality: list[dict]
    layers: list[Layer]
    selection: list[int]

    @property
    def trainable_params(self) -> int:
        return sum(self.layers[i].params for i in self.selection)


def is_selection_epoch(epoch: int, every: int) -> bool:
    """Algorithm 1's ``epoch % R == 1`` for CLAT epochs 1, 2, ... (every epoch when R = 1)."""
    return (epoch - 1) % every == 0


def criticality_batch(train: Data, size: int, seed: int) -> Data:
    """The fixed batch of ``size`` training examples the criticality is measured on."""
    x, y = train
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]
    return x[idx], y[idx]


def criticality_generator(seed: int, epoch: int) -> torch.Generator:
    """Noise of the criticality measurement (and random selection) at global ``epoch``."""
    return torch.Generator().manual_seed(zlib.crc32(f"clat/{seed}/{epoch}".encode()))


def freeze_all_but(model: nn.Module, modules: Sequence[nn.Module]) -> None:
    """Only the parameters of ``modules`` require gradients."""
    for param in model.parameters():
        param.requires_grad_(False)
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(True)


def fit_clat(
    model: nn.Module,
    train: Data,
    val: Data,
    clat: ClatConfig,
    config: TrainConfig,
    seed: int,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    epoch_offset: int = 0,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> ClatResult:
    """Fine-tune a pretrained ``model`` in place with CLAT for ``clat.epochs`` epochs.

    ``config`` supplies batch size, optimizer, schedule type, weight decay, modifiers and
    validation settings; its ``epochs``, ``lr`` and ``warmup_epochs`` are replaced by CLAT's.
    Checkpoints (with the current selection and criticality rows) are written after every
    epoch; ``on_epoch_end(global_epoch, weights)`` as in :func:`fit`.
    """
    config = replace(config, epochs=clat.epochs, lr=clat.lr, warmup_epochs=clat.warmup_epochs)
    device = device or torch.device("cpu")
    fmt = memory_format(config)
    model.to(device=device, memory_format=fmt)
    xc, yc = criticality_batch(train, clat.criticality_batch, seed)
    xc, yc = xc.to(device, memory_format=fmt), yc.to(device)
    layers = forward_order_layers(model, xc)
    eligible = [
        i
        for i, layer in enumerate(layers)
        if clat.select_from == "all" or isinstance(layer.module, nn.Conv2d)
    ]
    if not eligible:
        raise ValueError(f"no layer to select from ({clat.select_from!r}) in this model")
    count = layer_count(clat.k, len(eligible))
    identity = fingerprint(
        {"config": config, "clat": clat, "seed": seed, "epoch_offset": epoch_offset},
        contents={
            "x": train[0],
            "y": train[1],
            **{f"init.{k}": v for k, v in model.state_dict().items()},
        },
    )
    ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    state: dict = {"selection": None, "criticality": None, "rows": []}
    optimizer: torch.optim.Optimizer | None = None
    history: list[dict] = []
    start_epoch = 1
    resume = resume_point(checkpoint, identity)
    if resume is not None:
        state = checkpoint_state(resume)
        freeze_all_but(model, [layers[i].module for i in state["selection"]])
        optimizer = build_optimizer(model, config)
        last, history = load_checkpoint(resume, model, optimizer, ema)
        start_epoch = last + 1
    mixes = config.label_smoothing > 0 or config.mixes
    num_classes = num_classes_of(model, train[0]) if mixes else None
    fast = clat.fast

    for epoch in range(start_epoch, clat.epochs + 1):
        started = time.perf_counter()
        global_epoch = epoch_offset + epoch
        if optimizer is None or is_selection_epoch(epoch, clat.reselect_every):
            generator = criticality_generator(seed, global_epoch)
            weakness, criticality = measure_criticality(
                model,
                [layer.module for layer in layers],
                xc,
                yc,
                clat.eps,
                clat.steps,
                clat.step_size,
                generator,
            )
            selection = select_layers(
                clat.selection, criticality, count, state["selection"], generator, eligible
            )
            state["selection"], state["criticality"] = selection, criticality
            state["rows"] += [
                {
                    "epoch": global_epoch,
                    "layer_index": layer.index,
                    "layer_name": layer.name,
                    "weakness": w,
                    "criticality": c,
                    "selected": i in selection,
                }
                for i, (layer, w, c) in enumerate(zip(layers, weakness, criticality, strict=True))
            ]
            freeze_all_but(model, [layers[i].module for i in selection])
            optimizer = build_optimizer(model, config)
        selection = state["selection"]
        technique = ClatObjective(
            [layers[i].module for i in selection],
            lam=clat.lam,
            eps=clat.eps,
            steps=1 if fast else clat.steps,
            step_size=1.25 if fast else clat.step_size,
        )
        stats = train_epoch(
            model,
            train,
            technique,
            config,
            optimizer,
            epoch,
            epoch_generator(seed, global_epoch),
            device,
            ema=ema,
            num_classes=num_classes,
            freeze_bn_stats=clat.freeze_bn_stats,
            progress=progress,
            desc="clat epoch",
        )
        weights = ema.model if ema is not None else model
        history.append(
            {
                "epoch": global_epoch,
                **stats,
                **validate(weights, val, config, seed, global_epoch, device),
                "trainable_params": count_params(model, trainable_only=True),
                "selected_layers": json.dumps([layers[i].index for i in selection]),
                "selected_layer_names": json.dumps([layers[i].name for i in selection]),
                "selected_criticality": json.dumps([state["criticality"][i] for i in selection]),
                "seconds": time.perf_counter() - started,
            }
        )
        if on_epoch_end is not None:
            on_epoch_end(global_epoch, weights)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                model,
                optimizer,
                epoch,
                history,
                ema,
                {**state, "fingerprint": identity},
            )
    if ema is not None:
        model.load_state_dict(ema.model.state_dict())
    model.eval()
    return ClatResult(history, state["rows"], layers, list(state["selection"]))
