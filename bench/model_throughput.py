"""Training throughput (images/s) of the small-scale architectures on this CPU; asserts nothing.

One SGD step = forward + backward + update on a batch of 28x28 grey images, 10 classes,
channels_last and bf16 autocast (as the train stage runs on CPU), on ``--threads`` threads.

    .venv/bin/python bench/model_throughput.py [--threads 1] [--batch 128] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustlab.models import build_model, count_macs, count_params  # noqa: E402

SMALL = {
    "small_cnn": {},
    "robust_resnet_tiny": {},
    "wrn_10_2": {},
    "wrn_16_2": {},
    "preact_resnet18": {"base_width": 16},
    "vit_tiny": {},
    "mlp_mixer_tiny": {},
}


def throughput(name: str, options: dict, batch: int, steps: int, amp: bool) -> float:
    """Median images/s over ``steps`` timed training steps (after two warm-up steps)."""
    torch.manual_seed(0)
    model = build_model(name, 10, 1, 28, **options).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--fp32", action="store_true", help="also time without autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} batch={args.batch} input 1x28x28, channels_last")
    print(f"{'name':20s} {'params':>9s} {'MACs':>9s} {'bf16 img/s':>11s} {'fp32 img/s':>11s}")
    for name, options in SMALL.items():
        model = build_model(name, 10, 1, 28, **options)
        params, macs = count_params(model), count_macs(model, (1, 28, 28))
        bf16 = throughput(name, options, args.batch, args.steps, amp=True)
        fp32 = throughput(name, options, args.batch, args.steps, amp=False) if args.fp32 else 0
        fp32_text = f"{fp32:11.0f}" if args.fp32 else f"{'-':>11s}"
        print(f"{name:20s} {params / 1e6:8.3f}M {macs / 1e6:8.1f}M {bf16:11.0f} {fp32_text}")


if __name__ == "__main__":
    main()
