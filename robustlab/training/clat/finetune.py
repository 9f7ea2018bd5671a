"""CLAT fine-tuning (CLAT, Algorithm 1) as a strategy of the library's training loop.

:class:`ClatStrategy` hooks into :func:`robustlab.training.fit`: at CLAT epochs 1, R + 1,
2R + 1, ... the criticality of every candidate layer is measured on a fresh training batch and
the selection is made (dynamic / static / random); only the selected layers' parameters are
trainable and the loop rebuilds its optimizer over them (so frozen weights get no decay or
momentum and stay bit-identical). With ``lam: auto`` lambda is calibrated once, after the
first selection. Set-up, resume, EMA, validation and checkpoints are the loop's. Epochs are
numbered globally (``epoch_offset`` + CLAT epoch) for the history, the criticality table and
the per-epoch generators, so curves of the pretraining run and of CLAT line up.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from robustlab.training.clat.config import ClatConfig
from robustlab.training.clat.criticality import (
    eligible_layers,
    layer_count,
    measure_criticality,
    select_layers,
)
from robustlab.training.clat.layers import Layer, forward_order_layers
from robustlab.training.clat.objective import ClatObjective, calibrate_lambda
from robustlab.training.config import TrainConfig
from robustlab.training.loop import Data, fit, memory_format
from robustlab.training.strategy import TrainingStrategy
from robustlab.training.techniques import Technique


@dataclass
class ClatResult:
    """History rows (one per CLAT epoch), criticality rows (one per candidate layer and
    measurement), the candidate layers, the final selection (0-based positions), the lambda
    used and, with ``lam: auto``, the calibration's CE and L_C (None otherwise)."""

    history: list[dict]
    criticality: list[dict]
    layers: list[Layer]
    selection: list[int]
    lam: float
    calibration: dict[str, float] | None = None

    @property
    def trainable_params(self) -> int:
        return sum(self.layers[i].params for i in self.selection)


def is_selection_epoch(epoch: int, every: int) -> bool:
    """Algorithm 1's ``epoch % R == 1`` for CLAT epochs 1, 2, ... (every epoch when R = 1)."""
    return (epoch - 1) % every == 0


def _generator(tag: str, seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{tag}/{seed}/{epoch}".encode()))


def criticality_batch(train: Data, size: int, seed: int, epoch: int) -> Data:
    """The training batch of ``size`` examples the criticality is measured on at global
    ``epoch``: a fresh draw at every measurement (Algorithm 1, line 5)."""
    x, y = train
    idx = torch.randperm(len(x), generator=_generator("clat-batch", seed, epoch))[:size]
    return x[idx], y[idx]


def criticality_generator(seed: int, epoch: int) -> torch.Generator:
    """Noise of the criticality measurement (and random selection) at global ``epoch``."""
    return _generator("clat", seed, epoch)


def freeze_all_but(model: nn.Module, modules: Sequence[nn.Module]) -> None:
    """Only the parameters of ``modules`` require gradients."""
    for param in model.parameters():
        param.requires_grad_(False)
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(True)


class ClatStrategy(TrainingStrategy):
    """Algorithm 1 in the hooks of :func:`robustlab.training.fit` (see the module docstring)."""

    desc = "clat epoch"

    def __init__(
        self,
        model: nn.Module,
        train: Data,
        val: Data,
        clat: ClatConfig,
        seed: int,
        epoch_offset: int,
        device: torch.device,
        fmt: torch.memory_format,
    ) -> None:
        self.train, self.val, self.clat, self.seed = train, val, clat, seed
        self.epoch_offset = epoch_offset
        self.freeze_bn_stats = clat.freeze_bn_stats
        self.device, self.fmt = device, fmt
        self.init = {f"init.{k}": v.detach().clone() for k, v in model.state_dict().items()}
        xc, _ = self._batch(epoch_offset + 1)
        self.layers = forward_order_layers(model, xc, clat.select_from)
        self.eligible = eligible_layers(self.layers, model, clat.max_trainable_share)
        self.count = min(layer_count(clat.k, len(self.layers)), len(self.eligible))
        fast = clat.fast
        self.objective = ClatObjective(
            [],
            lam=math.nan if clat.lam == "auto" else float(clat.lam),
            eps=clat.eps,
            steps=1 if fast else clat.steps,
            step_size=1.25 if fast else clat.step_size,
            ce_on=clat.ce_on,
            feature_loss=clat.feature_loss,
        )
        self.selection: list[int] | None = None
        self.criticality: list[float] | None = None
        self.rows: list[dict] = []
        self.calibration: dict[str, float] | None = None

    def _batch(self, epoch: int) -> Data:
        x, y = criticality_batch(self.train, self.clat.criticality_batch, self.seed, epoch)
        return x.to(self.device, memory_format=self.fmt), y.to(self.device)

    def _apply(self, model: nn.Module) -> None:
        assert self.selection is not None
        chosen = [self.layers[i].module for i in self.selection]
        freeze_all_but(model, chosen)
        self.objective.layers = chosen

    def identity(self) -> dict[str, Any]:
        return {"clat": self.clat, "epoch_offset": self.epoch_offset}

    def identity_contents(self) -> dict[str, torch.Tensor]:
        return self.init

    def restore(self, model: nn.Module, state: dict[str, Any]) -> None:
        self.selection, self.criticality = state["selection"], state["criticality"]
        self.rows, self.calibration = state["rows"], state["calibration"]
        self.objective.lam = state["lam"]
        self._apply(model)

    def begin_epoch(self, model: nn.Module, epoch: int) -> bool:
        if self.selection is not None and not is_selection_epoch(epoch, self.clat.period):
            return False
        run_epoch = self.epoch_offset + epoch
        xc, yc = self._batch(run_epoch)
        generator = criticality_generator(self.seed, run_epoch)
        weakness, criticality = measure_criticality(
            model,
            [layer.module for layer in self.layers],
            xc,
            yc,
            self.clat.eps,
            self.clat.steps,
            self.clat.step_size,
            generator,
        )
        self.selection = select_layers(
            self.clat.selection, criticality, self.count, self.selection, generator, self.eligible
        )
        self.criticality = criticality
        self.rows += [
            {
                "epoch": run_epoch,
                "layer_index": layer.index,
                "layer_name": layer.name,
                "weakness": w,
                "criticality": c,
                "selected": i in self.selection,
            }
            for i, (layer, w, c) in enumerate(zip(self.layers, weakness, criticality, strict=True))
        ]
        self._apply(model)
        if self.clat.lam == "auto" and self.calibration is None:
            self._calibrate(model)
        return True

    def _calibrate(self, model: nn.Module) -> None:
        size = min(self.clat.calibration_batch, len(self.val[0]))
        x = self.val[0][:size].to(self.device, memory_format=self.fmt)
        y = self.val[1][:size].to(self.device)
        generator = _generator("clat-lam", self.seed, self.epoch_offset)
        lam, ce, feature = calibrate_lambda(self.objective, model, x, y, generator)
        self.objective.lam = lam
        self.calibration = {"ce": ce, "feature_loss": feature, "images": size}

    def technique(self, default: Technique) -> Technique:
        return self.objective

    def epoch_columns(self, model: nn.Module) -> dict[str, Any]:
        assert self.selection is not None and self.criticality is not None
        chosen = [self.layers[i] for i in self.selection]
        return {
            "lam": self.objective.lam,
            **self.objective.take_terms(),
            "selected_layers": json.dumps([layer.index for layer in chosen]),
            "selected_layer_names": json.dumps([layer.name for layer in chosen]),
            "selected_criticality": json.dumps([self.criticality[i] for i in self.selection]),
        }

    def state(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "criticality": self.criticality,
            "rows": self.rows,
            "lam": self.objective.lam,
            "calibration": self.calibration,
        }


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
    Runs :func:`robustlab.training.fit` with a :class:`ClatStrategy`: checkpoints (with the
    selection, criticality rows and lambda) after every epoch, ``on_epoch_end(global_epoch,
    weights)`` as in ``fit``.
    """
    config = replace(config, epochs=clat.epochs, lr=clat.lr, warmup_epochs=clat.warmup_epochs)
    device = device or torch.device("cpu")
    fmt = memory_format(config)
    model.to(device=device, memory_format=fmt)
    strategy = ClatStrategy(model, train, val, clat, seed, epoch_offset, device, fmt)
    history = fit(
        model,
        train,
        val,
        strategy.objective,
        config,
        seed,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
        on_epoch_end=on_epoch_end,
        strategy=strategy,
    )
    assert strategy.selection is not None
    return ClatResult(
        history,
        strategy.rows,
        strategy.layers,
        list(strategy.selection),
        strategy.objective.lam,
        strategy.calibration,
    )
