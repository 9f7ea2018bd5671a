"""Hardware efficiency of the default architectures: achieved GFLOP/s against this machine's peaks.

Measures, on ``--threads`` threads:

1. the matmul peaks (the anchors): a square GEMM (1024 on CPU, 8192 on CUDA; TF32 off) in
   fp32 and in bf16;
2. for every architecture of the grid in ``--params`` (default params.yaml, named variants
   resolved): a training step (forward, cross-entropy, backward, SGD update on a batch of
   ``--batch`` images) in the precision ``train.amp`` resolves to on ``--device``,
   channels_last as the train stage runs it; and an attack step (eval mode, forward + gradient
   with respect to the input, as one PGD iteration) at evaluation batch sizes 100 and 500, in
   the default layout and in channels_last (as stages.common.load_eval_model).

FLOPs count 2 per multiply-accumulate (robustlab.models.count_macs): a training step is 3x the
forward's (forward, input gradients, weight gradients), an attack step 2x. Medians of
``--steps`` timed steps after two warm-ups. Prints, asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python bench/hardware_efficiency.py [--threads 1] [--steps 6]
        [--params params.yaml] [--config presets/X.yaml]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robustlab.models import build_model, count_macs  # noqa: E402
from robustlab.training.precision import resolve_amp  # noqa: E402
from workflow.labconfig import load_config, resolve  # noqa: E402

DEVICE = torch.device("cpu")


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(step: Callable[[], object], steps: int) -> float:
    """Median wall time of ``steps`` calls of ``step`` after two warm-up calls."""
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        synchronize()
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, size: int, steps: int = 3) -> float:
    """GFLOP/s of a square GEMM in ``dtype``."""
    a = torch.randn(size, size, device=DEVICE).to(dtype)
    b = torch.randn(size, size, device=DEVICE).to(dtype)
    return 2 * size**3 / median_seconds(lambda: a @ b, steps) / 1e9


def grid_architectures(params: Path, configs: list[Path]) -> dict[str, tuple[str, dict]]:
    """Name -> (registered architecture, options) for the grid's architectures."""
    resolved = resolve(load_config(params, *configs)).config
    found = {}
    for name in resolved["grid"]["architectures"]:
        options = dict(resolved.get("architectures", {}).get(name) or {})
        found[name] = (options.pop("arch", name), options)
    return found


def training_step(model: torch.nn.Module, batch: int, amp: bool) -> Callable[[], None]:
    model = model.to(DEVICE, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 1, 28, 28, device=DEVICE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=DEVICE)

    def step() -> None:
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def attack_step(model: torch.nn.Module, batch: int, channels_last: bool) -> Callable[[], None]:
    model = model.to(DEVICE).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.rand(batch, 1, 28, 28, device=DEVICE)
    y = torch.randint(0, 10, (batch,), device=DEVICE)

    def step() -> None:
        x_adv = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        torch.autograd.grad(loss, x_adv)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128, help="training batch size")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--config", type=Path, action="append", default=[])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as evaluation runs
    torch.backends.cudnn.allow_tf32 = False
    size = 8192 if DEVICE.type == "cuda" else 1024
    fp32_peak = matmul_peak(torch.float32, size)
    bf16_peak = matmul_peak(torch.bfloat16, size)
    params = load_config(args.params, *args.config)
    amp = resolve_amp(params.get("train", {}).get("amp", "bf16"), DEVICE)
    print(
        f"torch {torch.__version__} on {DEVICE.type}, {args.threads} CPU thread(s); "
        f"matmul peaks: fp32 "
        f"{fp32_peak:.0f} GFLOP/s, bf16 {bf16_peak:.0f} GFLOP/s; training precision "
        f"{'bf16' if amp == 'bf16' else 'fp32'} (train.amp resolved here)"
    )
    peak = bf16_peak if amp == "bf16" else fp32_peak
    print(
        f"{'architecture':22s} {'MMACs':>6s} | {'train img/s':>11s} {'GFLOP/s':>7s} {'%peak':>5s} |"
        f" attack img/s (GFLOP/s, % of fp32 peak) at batch 100 / 500, default | channels_last"
    )
    for name, (arch, options) in grid_architectures(args.params, args.config).items():
        torch.manual_seed(0)
        model = build_model(arch, 10, 1, 28, **options)
        macs = count_macs(model, (1, 28, 28))
        train_ips = args.batch / median_seconds(
            training_step(model, args.batch, amp == "bf16"), args.steps
        )
        train_gflops = 6 * macs * train_ips / 1e9
        cells = []
        for channels_last in (False, True):
            for batch in (100, 500):
                torch.manual_seed(0)
                fresh = build_model(arch, 10, 1, 28, **options)
                ips = batch / median_seconds(attack_step(fresh, batch, channels_last), args.steps)
                gflops = 4 * macs * ips / 1e9
                cells.append(f"{ips:5.0f} ({gflops:4.0f}, {100 * gflops / fp32_peak:3.0f}%)")
        print(
            f"{name:22s} {macs / 1e6:6.1f} | {train_ips:11.0f} {train_gflops:7.1f} "
            f"{100 * train_gflops / peak:4.0f}% | {' / '.join(cells[:2])} | {' / '.join(cells[2:])}"
        )


if __name__ == "__main__":
    main()
