"""Attack speed: our PGD-Linf against the textbook loop, pass counts per attack, AutoAttack cost.

1. PGD-Linf (no random start, no shortcuts) against the torchattacks-style textbook loop of
   tests/test_attacks.py, on the same model and data in the same run: the two take turns for
   ``--repeats`` rounds after a warm-up; medians of the times and of the per-round ratios
   (target: ratio <= 1.05). Also checks that both give bit-identical examples.
2. Forward/backward passes (in examples) and robust accuracy per attack, with the defaults and
   with the shortcuts (``skip_misclassified`` + ``early_stop``), on a small CNN trained in the
   run (PGD-AT at eps 0.15 on 1500 Fashion-MNIST images; random data if the files are absent).
3. AutoAttack (standard version) on that model: seconds and passes per robust point.

Prints, asserts nothing.

    .venv/bin/python bench/attack_speed.py [--repeats 7] [--points 200] [--aa-points 20]
        [--threads 1] [--arch small_cnn] [--skip-aa]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustlab.data import load_dataset, stratified_subset  # noqa: E402
from robustlab.evaluation import evaluate_attack  # noqa: E402
from robustlab.models import build_model  # noqa: E402
from robustlab.noise.adversarial import PGDLinf, build_attack  # noqa: E402
from robustlab.training import TrainConfig, build_technique, fit  # noqa: E402

ARCHS = {"small_cnn": {"width": 32, "hidden": 128}, "preact_resnet18": {"base_width": 16}}
EPS = {"linf": 0.1, "l2": 1.5, "l1": 10.0}
ATTACKS = [
    ("fgsm", {}),
    ("pgd_linf", {"steps": 10}),
    ("pgd_linf", {"steps": 20, "restarts": 2}),
    ("cw_linf", {}),
    ("mim", {}),
    ("pgd_l2", {}),
    ("pgd_l1", {}),
    ("ddn", {}),
    ("square", {"n_queries": 1000}),
    ("autoattack", {"version": "custom", "attacks": ["apgd-ce"]}),
]
SHORTCUTS = {"skip_misclassified": True, "early_stop": True}


def textbook_pgd(model, x, y, eps, alpha, steps):
    """The torchattacks-style loop (the same as in tests/test_attacks.py)."""
    loss_fn = nn.CrossEntropyLoss()
    adv = x.clone().detach()
    for _ in range(steps):
        adv.requires_grad = True
        cost = loss_fn(model(adv), y)
        grad = torch.autograd.grad(cost, adv, retain_graph=False, create_graph=False)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=0, max=1).detach()
    return adv


def _data(points: int, train_points: int):
    try:
        test, train = load_dataset("fashion_mnist", "test"), load_dataset("fashion_mnist", "train")
    except Exception as err:  # noqa: BLE001 - the bench falls back to random data
        print(f"Fashion-MNIST unavailable ({err}); random data", file=sys.stderr)
        g = torch.Generator().manual_seed(0)
        make = lambda n: (torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,)))  # noqa: E731
        return make(points), make(train_points)
    out = []
    for data, n in ((test, points), (train, train_points)):
        keep = torch.from_numpy(stratified_subset(data.labels, n, seed=0))
        x, y = data.tensors()
        out.append((x[keep], y[keep]))
    return out


def _timed(fn) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_textbook(arch: str, x, y, repeats: int, steps: int = 10, eps: float = 0.1) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 10, 1, 28, **ARCHS[arch]).eval()
    alpha = 0.25 * eps
    ours = PGDLinf(steps=steps, step_size=0.25, random_start=False)
    same = torch.equal(ours(model, x, y, eps), textbook_pgd(model, x, y, eps, alpha, steps))
    runs = {
        "ours": lambda: ours(model, x, y, eps),
        "textbook": lambda: textbook_pgd(model, x, y, eps, alpha, steps),
    }
    for run in runs.values():  # warm-up
        run()
    rounds: list[dict[str, tuple[float, float]]] = []
    for i in range(repeats):  # take turns, alternating which goes first
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        rounds.append({name: _timed(runs[name]) for name in order})
    print(f"\n## PGD-Linf vs the textbook loop ({arch}, {len(x)} images 28x28x1, {steps} steps)")
    print(f"bit-identical adversarial examples: {same}")
    print("| loop | median wall s | median CPU s | min wall s | max wall s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in runs:
        wall = [r[name][0] for r in rounds]
        cpu = [r[name][1] for r in rounds]
        print(
            f"| {name} | {statistics.median(wall):.3f} | {statistics.median(cpu):.3f} | "
            f"{min(wall):.3f} | {max(wall):.3f} |"
        )
    for k, what in ((0, "wall"), (1, "CPU")):
        ratios = [r["ours"][k] / r["textbook"][k] for r in rounds]
        print(
            f"ratio ours / textbook ({what}): median {statistics.median(ratios):.3f} "
            f"(per round: {', '.join(f'{r:.3f}' for r in ratios)}; target <= 1.05)"
        )


def _trained_model(train) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 28, width=8, hidden=64)
    config = TrainConfig(epochs=5, batch_size=50, lr=0.1, amp="none", val_pgd_size=10)
    technique = build_technique("pgd_at", eps=0.15, steps=3, step_size=0.5)
    fit(model, train, (train[0][:10], train[1][:10]), technique, config, seed=0, progress=False)
    return model.eval()


def bench_passes(model, x, y) -> None:
    print(f"\n## Passes per attack (small_cnn w8 PGD-AT, {len(x)} images; in examples)")
    print("| attack | params | eps | shortcuts | robust acc % | forward | backward | s |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, params in ATTACKS:
        variants = [False, True] if name not in ("autoattack", "square") else [False]
        for shortcuts in variants:
            extra = dict(SHORTCUTS) if shortcuts else {}
            if shortcuts and name in ("fgsm", "ddn"):
                extra = {"skip_misclassified": True}
            attack = build_attack(name, **params, **extra)
            eps = EPS[attack.norm]
            out = evaluate_attack(model, x, y, attack, eps, torch.Generator().manual_seed(0))
            label = "+".join(k for k in extra) or "-"
            print(
                f"| {name} | {params or ''} | {eps:g} | {label} | {out.robust_accuracy:.1f} | "
                f"{out.forward} | {out.backward} | {out.seconds:.2f} |"
            )


def bench_autoattack(model, x, y, eps: float = 0.1) -> None:
    attack = build_attack("autoattack")
    cpu = time.process_time()
    out = evaluate_attack(model, x, y, attack, eps, torch.Generator().manual_seed(0))
    cpu = time.process_time() - cpu
    robust = int(out.correct.sum())
    print(f"\n## AutoAttack standard (small_cnn w8 PGD-AT, {len(x)} images, eps {eps:g})")
    print(f"robust accuracy {out.robust_accuracy:.1f} % ({robust} robust points)")
    print(
        f"total {out.seconds:.1f} s wall, {cpu:.1f} s CPU; forward {out.forward}, "
        f"backward {out.backward} examples"
    )
    if robust:
        print(
            f"per robust point: {out.seconds / robust:.3f} s wall, {cpu / robust:.3f} s CPU, "
            f"{out.forward / robust:.0f} forward, {out.backward / robust:.0f} backward"
        )
    print(f"flags: {sorted(attack.flags) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--aa-points", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", default="small_cnn", choices=sorted(ARCHS))
    parser.add_argument("--skip-aa", action="store_true", help="leave out AutoAttack standard")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")
    (x, y), train = _data(args.points, 1500)
    bench_textbook(args.arch, x, y, args.repeats)
    model = _trained_model(train)
    bench_passes(model, x, y)
    if not args.skip_aa:
        bench_autoattack(model, x[: args.aa_points], y[: args.aa_points])


if __name__ == "__main__":
    main()
