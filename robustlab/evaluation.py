"""Evaluation in fp32, model in eval mode: clean predictions and predictions under attack.

The judged prediction is strict fp32: autocast off and TF32 off (cuDNN convolutions and float32
matmuls, which CUDA otherwise runs in TF32 by default). Crafting runs in the surrounding
precision settings with autocast off; the prediction an attack saw when it finished crafting
(``AttackOutcome.attack_prediction``) is kept, so examples the attack counted as fooled can be
re-confirmed by the strict fp32 judgement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from robustlab.noise.adversarial.counting import count_passes
from robustlab.noise.adversarial.norms import perturbation_norm


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@contextmanager
def strict_fp32(device: torch.device) -> Iterator[None]:
    """Autocast off, TF32 off for cuDNN and float32 matmuls; the settings are restored after."""
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    matmul = torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        torch.set_float32_matmul_precision(matmul)


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Top-1 predictions (int64, on CPU) for images in [0, 1], model in eval mode, strict fp32."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    with strict_fp32(device):
        for s in _batches(len(x), batch_size):
            out.append(model(x[s].to(device).float()).argmax(1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


@dataclass
class _Batch:
    x_adv: torch.Tensor  # on the model's device
    forward: int
    backward: int
    seconds: float


def _crafted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    eps: float,
    generator: torch.Generator | None,
    device: torch.device,
    batch_size: int,
    progress: bool,
    desc: str,
) -> Iterator[_Batch]:
    """Crafted batches, eval mode and autocast off; passes and time of the attack call only."""
    model.eval()
    with torch.autocast(device.type, enabled=False):
        batches = list(_batches(len(x), batch_size))
        for s in tqdm(batches, desc=desc, disable=not progress, leave=False):
            xb, yb = x[s].to(device).float(), y[s].to(device)
            started = time.perf_counter()
            with count_passes(model) as passes:
                x_adv = attack(model, xb, yb, eps, generator).detach()
            seconds = time.perf_counter() - started
            yield _Batch(x_adv, passes.forward, passes.backward, seconds)


def attack_examples(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    eps: float,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    batch_size: int = 500,
    progress: bool = False,
    desc: str = "attack",
) -> torch.Tensor:
    """Adversarial examples for every input (on CPU), crafted batch by batch on the model's
    device, in eval mode and fp32 (any surrounding autocast is switched off)."""
    device = device or next(model.parameters()).device
    out = [
        b.x_adv.cpu()
        for b in _crafted(model, x, y, attack, eps, generator, device, batch_size, progress, desc)
    ]
    return torch.cat(out) if out else x.clone()


def robust_predict(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    eps: float,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Predictions on the attack's adversarial examples."""
    x_adv = attack_examples(model, x, y, attack, eps, generator, device, batch_size)
    return predict(model, x_adv, device, batch_size)


@dataclass(frozen=True)
class AttackOutcome:
    """One attack at one eps on a set of points (tensors on CPU).

    ``prediction``/``correct``: the judgement, strict fp32 in eval mode (:func:`predict`);
    ``attack_prediction``: the prediction on ``x_adv`` in the crafting settings, right after
    the attack returned (what the attack counted); ``fooled_by``: for attacks made of stages
    (AutoAttack), the stage whose example fooled each point ("" where none did), else None;
    ``perturbation``: per-example size of ``x_adv - x`` in the attack's norm (float64);
    ``forward``/``backward``: model passes in examples spent crafting (not predicting);
    ``seconds``: wall-clock time of crafting.
    """

    x_adv: torch.Tensor
    prediction: torch.Tensor
    correct: torch.Tensor
    perturbation: torch.Tensor
    forward: int
    backward: int
    seconds: float
    attack_prediction: torch.Tensor
    fooled_by: tuple[str, ...] | None = None

    @property
    def robust_accuracy(self) -> float:
        """Percentage of points still classified correctly (NaN without points)."""
        return 100.0 * float(self.correct.float().mean()) if len(self.correct) else float("nan")


def evaluate_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    eps: float,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    batch_size: int = 500,
    progress: bool = False,
    desc: str = "attack",
) -> AttackOutcome:
    """Craft batch by batch (as :func:`attack_examples`), counting passes and time, keep the
    prediction in the crafting settings, then judge in strict fp32 with :func:`predict`.

    An attack with a ``fooled_by`` list (AutoAttack) fills it on every call with the stage
    that fooled each point; it is collected into ``AttackOutcome.fooled_by``.
    """
    device = device or next(model.parameters()).device
    adv, seen, stages = [], [], []
    forward = backward = 0
    seconds = 0.0
    record = getattr(attack, "fooled_by", None)
    for batch in _crafted(model, x, y, attack, eps, generator, device, batch_size, progress, desc):
        forward, backward = forward + batch.forward, backward + batch.backward
        seconds += batch.seconds
        with torch.no_grad():  # still in the crafting settings (autocast off, TF32 as set)
            seen.append(model(batch.x_adv).argmax(1).cpu())
        adv.append(batch.x_adv.cpu())
        if isinstance(record, list):
            stages += list(record)
    x_adv = torch.cat(adv) if adv else x.clone()
    prediction = predict(model, x_adv, device, batch_size)
    return AttackOutcome(
        x_adv=x_adv,
        prediction=prediction,
        correct=prediction == y.cpu(),
        perturbation=perturbation_norm(x_adv, x.cpu(), getattr(attack, "norm", "linf")).cpu(),
        forward=forward,
        backward=backward,
        seconds=seconds,
        attack_prediction=torch.cat(seen) if seen else torch.empty(0, dtype=torch.int64),
        fooled_by=tuple(stages) if isinstance(record, list) and len(stages) == len(x) else None,
    )
