"""Adversarial attacks, built by name: ``build_attack(name, **params)``.

Every attack is called as ``attack(model, x, y, eps, generator=None) -> x_adv`` and returns
adversarial inputs inside the eps-ball of its ``norm`` ("linf", "l2" or "l1", pixel scale)
around ``x`` and inside [0, 1]; ``eps == 0`` returns ``x`` unchanged; the caller puts the model
in eval mode. ``docs/attacks.md`` lists the attacks, their parameters and references.

Modules: ``base`` (contract, registry), ``norms`` (balls, projections, random points),
``losses``, ``ascent`` (the PGD loop), ``pgd`` (FGSM, PGD-Linf/L2/L1, CW-Linf, MIM), ``ddn``,
``autoattack`` (AutoAttack, Square, pyautoattack's checks), ``counting`` (pass counter),
``probes`` (model-level sanity probes).

Written here rather than taken from torchattacks, which cannot be installed beside this torch
build (see docs/development.md); the PGD loop is the textbook one (Madry et al.).
"""

from robustlab.noise.adversarial.ascent import gradient_ascent, linf_ascent
from robustlab.noise.adversarial.autoattack import AutoAttack, Square, autoattack_flags
from robustlab.noise.adversarial.base import (
    ATTACKS,
    Attack,
    AttackParameterError,
    WhiteBoxAttack,
    attack_names,
    build_attack,
    parameter_names,
)
from robustlab.noise.adversarial.counting import PassCounts, count_passes
from robustlab.noise.adversarial.ddn import DDN, at_budget
from robustlab.noise.adversarial.losses import LOSSES, cw_margin
from robustlab.noise.adversarial.norms import (
    NORMS,
    enforce_budget,
    l1_ball_projection,
    perturbation_norm,
    project_l1,
    project_l2,
    project_linf,
    random_in_ball,
    uniform_start,
)
from robustlab.noise.adversarial.pgd import FGSM, MIM, PGD, PGDL1, PGDL2, CWLinf, PGDLinf
from robustlab.noise.adversarial.probes import (
    ProbeResult,
    forward_is_deterministic,
    input_gradient_stats,
    outputs_look_like_logits,
    random_noise_examples,
)

#: the L-inf projection under its historical name (training techniques import it)
_project = project_linf

__all__ = [
    "ATTACKS",
    "DDN",
    "FGSM",
    "LOSSES",
    "MIM",
    "NORMS",
    "PGD",
    "PGDL1",
    "PGDL2",
    "Attack",
    "AttackParameterError",
    "AutoAttack",
    "CWLinf",
    "PGDLinf",
    "PassCounts",
    "ProbeResult",
    "Square",
    "WhiteBoxAttack",
    "at_budget",
    "attack_names",
    "autoattack_flags",
    "build_attack",
    "count_passes",
    "cw_margin",
    "enforce_budget",
    "forward_is_deterministic",
    "gradient_ascent",
    "input_gradient_stats",
    "l1_ball_projection",
    "linf_ascent",
    "outputs_look_like_logits",
    "parameter_names",
    "perturbation_norm",
    "project_l1",
    "project_l2",
    "project_linf",
    "random_in_ball",
    "random_noise_examples",
    "uniform_start",
]
