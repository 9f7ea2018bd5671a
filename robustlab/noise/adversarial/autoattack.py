"""AutoAttack and Square through pyautoattack, with its own reliability checks captured.

pyautoattack runs its checks (``pyautoattack.checks``) before and during an evaluation and
reports them as warnings on the ``auto-attack`` logger. We capture them as short flag names:

| flag | pyautoattack's check |
| --- | --- |
| ``randomized`` | outputs differ between identical forward passes (use version ``rand``) |
| ``softmax_output`` | outputs look like probabilities, not logits |
| ``dynamic`` | the forward pass computes gradients (test-time optimisation) |
| ``zero_gradients`` | some points have an all-zero input gradient in APGD |
| ``square_beats_white_box`` | Square lowered the accuracy left by the white-box attacks |
| ``too_few_classes`` | too few classes for the DLR losses or the targeted attacks |

Every run is seeded explicitly (never pyautoattack's time-based ``seed=None``): with the
``generator``'s initial seed when one is given, else the ``seed`` parameter. pyautoattack
reseeds torch's global generator; we restore it afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from robustlab.noise.adversarial.base import ATTACKS, Attack

AA_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = ("standard", "plus", "rand", "custom")
_AA_NORMS = {"linf": "Linf", "l2": "L2"}
_FLAG_PATTERNS = (
    ("randomized defense", "randomized"),
    ("probability distribution", "softmax_output"),
    ("dynamic defense", "dynamic"),
    ("zero gradient", "zero_gradients"),
    ("Square Attack has decreased", "square_beats_white_box"),
    ("classes", "too_few_classes"),
)


def flag_name(message: str) -> str:
    """The short flag name of one pyautoattack check message (``other`` if unknown)."""
    for pattern, name in _FLAG_PATTERNS:
        if pattern in message:
            return name
    return "other"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _captured_checks() -> Iterator[list[str]]:
    """Collect pyautoattack's warnings (they do not reach other handlers' output twice)."""
    from pyautoattack import checks

    for key in checks.funcs:  # check_dynamic counts into a module global that never resets
        checks.funcs[key] = 0
    logger = logging.getLogger("auto-attack")
    handler = _Capture()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _norm_name(attack: Attack, value: str) -> str:
    lowered = value.lower() if isinstance(value, str) else value
    if lowered not in _AA_NORMS:
        attack._fail("norm", f"one of {', '.join(_AA_NORMS)}")
    return lowered


@dataclass(frozen=True, kw_only=True)
class _PyAutoAttack(Attack):
    """Shared driver: builds pyautoattack's ``AutoAttack`` per call, runs its stages, keeps
    the flags raised and the stage that fooled each point.

    The stages (``attacks_to_run``) run one pyautoattack call each, every one on the points
    the previous stages left standing, with the same seed: the same cascade, examples and
    robust points as one ``run_standard_evaluation`` call (each stage seeds itself), plus the
    name of the stage that broke each point. pyautoattack's Square check, which needs every
    stage's accuracy, is run on the accuracies of the whole cascade.
    """

    norm: str = "linf"
    seed: int = 0
    #: flag name -> message of every check that fired since construction (or ``flags.clear()``)
    flags: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)
    #: per point of the last call: the stage whose example fooled the model, "" where none did
    #: (still correct, or misclassified before any stage ran)
    fooled_by: list[str] = field(default_factory=list, init=False, compare=False, repr=False)
    #: the stages in the order they run (pyautoattack's ``attacks_to_run``), once called
    stage_names: list[str] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", _norm_name(self, self.norm))
        self._integer("seed", 0)

    def _configure(self, model: nn.Module, eps: float, seed: int, device: torch.device):
        raise NotImplementedError

    def _seed(self, generator: torch.Generator | None) -> int:
        return int(generator.initial_seed()) if generator is not None else int(self.seed)

    def _craft(self, model, x, y, eps, generator) -> torch.Tensor:
        from pyautoattack import checks

        seed = self._seed(generator)
        devices = [x.device] if x.device.type == "cuda" else []
        y = y.long()
        x_adv = x.clone()
        fooled_by = [""] * len(x)
        with torch.random.fork_rng(devices=devices), _captured_checks() as messages:
            adversary = self._configure(model, eps, seed, x.device)
            stages = list(adversary.attacks_to_run)
            self.stage_names[:] = stages
            with torch.no_grad():
                correct = model(x).argmax(1) == y
            accuracy = {"clean": float(correct.float().mean())}
            # the first stage sees every point, like one pyautoattack call (its checks run on
            # the whole batch and it skips the misclassified points itself)
            standing = torch.arange(len(x), device=x.device)
            for position, stage in enumerate(stages):
                if position and len(standing) == 0:
                    break
                adversary.attacks_to_run = [stage]
                out, y_out = adversary.run_standard_evaluation(
                    x[standing], y[standing], batch_size=len(standing)
                )
                broken = y_out.to(y.device) != y[standing]
                rows = standing[broken]
                x_adv[rows] = out[broken].to(x_adv.dtype)
                for row in rows[correct[rows]].tolist():
                    fooled_by[row] = stage
                standing = standing[~broken]
                accuracy[stage] = len(standing) / len(x)
            checks.check_square_sr(accuracy, logger=adversary.logger)
        for message in messages:
            self.flags.setdefault(flag_name(message), message)
        self.fooled_by[:] = fooled_by
        return x_adv


@ATTACKS.register("autoattack")
@dataclass(frozen=True, kw_only=True)
class AutoAttack(_PyAutoAttack):
    """AutoAttack (Croce & Hein 2020) through pyautoattack.

    ``version``: standard (APGD-CE, APGD-T, FAB-T, Square), plus, rand, or custom with an
    ``attacks`` list (names in :data:`AA_ATTACKS`); ``norm`` linf or l2; ``n_queries`` overrides
    Square's query budget (the versions use 5000). Points the model
    misclassifies are never attacked (pyautoattack's own shortcut), and each attack runs only
    on the points the previous ones left standing.
    """

    name = "autoattack"
    version: str = "standard"
    attacks: Sequence[str] | None = None
    n_queries: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._choice("version", VERSIONS)
        if self.n_queries is not None:
            self._integer("n_queries", 1)
        if self.version == "custom":
            names = self.attacks
            if isinstance(names, str) or not names or any(a not in AA_ATTACKS for a in names):
                self._fail("attacks", f"a non-empty list of {', '.join(AA_ATTACKS)}")
            object.__setattr__(self, "attacks", tuple(names))
        elif self.attacks is not None:
            self._fail("attacks", "left out unless version is custom")

    def _configure(self, model, eps, seed, device):
        from pyautoattack import AutoAttack as PyAutoAttack

        adversary = PyAutoAttack(
            model,
            norm=_AA_NORMS[self.norm],
            eps=eps,
            version=self.version,
            attacks=list(self.attacks) if self.attacks is not None else None,
            seed=seed,
            device=device,
        )
        if self.n_queries is not None:
            adversary.square.n_queries = int(self.n_queries)
        return adversary


@ATTACKS.register("square")
@dataclass(frozen=True, kw_only=True)
class Square(_PyAutoAttack):
    """Square Attack (Andriushchenko et al. 2020) alone: the score-based black-box attack of
    AutoAttack, ``n_queries`` queries per point, initial square share ``p_init``, one run."""

    name = "square"
    n_queries: int = 5000
    p_init: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        self._integer("n_queries", 1)
        self._positive("p_init", maximum=1.0)

    def _configure(self, model, eps, seed, device):
        from pyautoattack import AutoAttack as PyAutoAttack

        adversary = PyAutoAttack(
            model,
            norm=_AA_NORMS[self.norm],
            eps=eps,
            version="custom",
            attacks=["square"],
            seed=seed,
            device=device,
        )
        adversary.square.n_queries = int(self.n_queries)
        adversary.square.p_init = float(self.p_init)
        return adversary


def autoattack_flags(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    seed: int = 0,
    *,
    norm: str = "linf",
    attacks: Sequence[str] = ("apgd-ce", "apgd-dlr", "square"),
    n_queries: int = 1000,
) -> list[str]:
    """Names of pyautoattack's checks that fire on ``(x, y)`` at ``eps`` (sorted; empty when
    all pass), from one seeded custom run of ``attacks`` with Square limited to ``n_queries``.

    The randomness, logits, dynamic and class-count checks run before any attack;
    pyautoattack checks for zero gradients only inside its DLR-loss attacks (apgd-dlr,
    apgd-t), and Square beating the white-box attacks needs Square after one of them. The
    caller puts the model in eval mode.
    """
    attack = AutoAttack(
        version="custom", attacks=tuple(attacks), norm=norm, seed=seed, n_queries=n_queries
    )
    attack(model, x, y, eps)
    return sorted(attack.flags)
