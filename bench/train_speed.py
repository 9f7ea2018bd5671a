"""Training throughput (images/s) of robustlab's training step against a plain fp32 loop.

For standard and PGD-AT steps on small_cnn and preact_resnet18 (base_width 16), 28x28x1 inputs,
batch 128: a plain fp32 PyTorch loop (forward, cross-entropy, backward, SGD step; PGD-AT crafts
its examples with PGDLinf first) and robustlab's ``train_epoch`` under each setting of ``amp``
and ``channels_last``. Medians of ``--repeats`` rounds of ``--steps`` steps per variant, after
one warm-up run each; the variants take turns within a round and each ratio is the median of
the per-round ratios to the plain fp32 loop (timings drift on a shared machine). The library
step also measures clean training accuracy (one extra no-grad forward pass for PGD-AT).
Prints, asserts nothing.

    .venv/bin/python bench/train_speed.py [--steps 6] [--repeats 5] [--threads 2] [--arch A]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustlab.models import build_model  # noqa: E402
from robustlab.noise.adversarial import PGDLinf  # noqa: E402
from robustlab.training.config import TrainConfig  # noqa: E402
from robustlab.training.loop import epoch_generator, train_epoch  # noqa: E402
from robustlab.training.optim import build_optimizer  # noqa: E402
from robustlab.training.techniques import build_technique  # noqa: E402

BATCH = 128
ARCHS = {"small_cnn": {"width": 32, "hidden": 128}, "preact_resnet18": {"base_width": 16}}
TECHNIQUES = {"standard": {}, "pgd_at": {"eps": 0.1, "steps": 3, "step_size": 0.5}}
SETTINGS = {  # (amp, channels_last)
    "fp32": ("none", False),
    "bf16": ("bf16", False),
    "channels_last": ("none", True),
    "channels_last+bf16": ("bf16", True),
}


def _model(arch: str):
    torch.manual_seed(0)
    return build_model(arch, 10, 1, 28, **ARCHS[arch])


def plain_loop(arch: str, technique: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """A textbook fp32 loop over the batches of ``x``."""
    model = _model(arch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    params = TECHNIQUES[technique]
    attack = PGDLinf(steps=params["steps"], step_size=params["step_size"]) if params else None

    def run() -> None:
        for start in range(0, len(x), BATCH):
            xb, yb = x[start : start + BATCH], y[start : start + BATCH]
            if attack is not None:
                model.eval()
                xb = attack(model, xb, yb, params["eps"], None)
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def library_loop(
    arch: str, technique: str, setting: str, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], None]:
    amp, channels_last = SETTINGS[setting]
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=0.01, amp=amp, channels_last=channels_last)
    model = _model(arch)
    device = torch.device("cpu")
    model.to(memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = build_optimizer(model, config)
    tech = build_technique(technique, **TECHNIQUES[technique])

    def run() -> None:
        train_epoch(
            model, (x, y), tech, config, optimizer, 1, epoch_generator(0, 1), device, progress=False
        )

    return run


def measure(runs: dict[str, Callable[[], None]], images: int, repeats: int) -> dict:
    """Median images/s of each run and the median over rounds of its ratio to ``plain``.

    The runs take turns within each round, so a load change on a shared machine hits them
    alike and the ratios stay meaningful even when absolute numbers drift.
    """
    for run in runs.values():
        run()  # warm-up (oneDNN primitive creation, allocator)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            rates[name].append(images / (time.perf_counter() - start))
    return {
        name: (
            statistics.median(values),
            statistics.median(v / p for v, p in zip(values, rates["plain"], strict=True)),
        )
        for name, values in rates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.steps * BATCH
    x, y = torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {BATCH}, 28x28x1, "
        f"median of {args.repeats} x {args.steps} steps; images/s (x plain fp32 loop)"
    )
    for arch in args.arch or list(ARCHS):
        for technique in TECHNIQUES:
            runs = {"plain": plain_loop(arch, technique, x, y)}
            for setting in SETTINGS:
                runs[setting] = library_loop(arch, technique, setting, x, y)
            results = measure(runs, n, args.repeats)
            line = f"{arch:16s} {technique:9s} plain fp32 {results.pop('plain')[0]:6.0f}"
            for setting, (rate, ratio) in results.items():
                line += f" | {setting} {rate:6.0f} ({ratio:4.2f}x)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
