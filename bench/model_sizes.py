"""Print the architecture registry as a Markdown table: family, parameters and MACs.

Sizes at 32x32x3 and 28x28x1 with 10 classes, counted on the meta device (no memory, no
compute, seconds for the 267M-parameter WRN-70-16). ``--paper`` adds the RobustResNet paper
comparison; ``--enum`` prints the names as a YAML list (for the params schema).

    .venv/bin/python bench/model_sizes.py [--paper] [--enum]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustlab.models import ARCHITECTURES, architecture_family, build_model  # noqa: E402
from robustlab.models.complexity import count_macs, count_params  # noqa: E402

# RobustResNet paper (Tables 2 and 5): params, MACs at 32x32x3, 10 classes.
PAPER = {
    "robust_resnet_a1": (19.2e6, 5.11e9),
    "robust_resnet_a2": (39.0e6, 10.8e9),
    "robust_resnet_a3": (75.9e6, 19.9e9),
    "robust_resnet_a4": (147e6, 39.4e9),
    "wrn_28_10": (36.5e6, 5.20e9),
    "wrn_34_10": (46.2e6, 6.66e9),
    "wrn_34_12": (66.5e6, 9.60e9),
    "wrn_46_14": (128e6, 18.6e9),
    "wrn_70_16": (267e6, 38.8e9),
    "wrn_34_r": (68.1e6, 19.1e9),
}


def size(name: str, channels: int, side: int) -> tuple[int, int]:
    with torch.device("meta"):
        model = build_model(name, 10, channels, side)
    return count_params(model), count_macs(model, (channels, side, side))


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}" if n / scale < 100 else f"{n / scale:.0f}{unit}"
    return str(int(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="compare with the paper's table")
    parser.add_argument("--enum", action="store_true", help="print the names as a YAML list")
    args = parser.parse_args()
    names = ARCHITECTURES.names()
    if args.enum:
        print("[" + ", ".join(names) + "]")
        return
    print(
        "| name | family | params (32x32x3) | MACs (32x32x3) | params (28x28x1) | MACs (28x28x1) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in names:
        p32, m32 = size(name, 3, 32)
        p28, m28 = size(name, 1, 28)
        family = architecture_family(name)
        print(
            f"| `{name}` | {family} | {human(p32)} | {human(m32)} | {human(p28)} | {human(m28)} |"
        )
    if args.paper:
        print()
        print("| name | params | paper | diff | MACs | paper | diff |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, (pp, pm) in PAPER.items():
            p, m = size(name, 3, 32)
            print(
                f"| `{name}` | {p / 1e6:.2f}M | {pp / 1e6:.4g}M | {100 * (p - pp) / pp:+.1f} % "
                f"| {m / 1e9:.2f}G | {pm / 1e9:.3g}G | {100 * (m - pm) / pm:+.1f} % |"
            )


if __name__ == "__main__":
    main()
