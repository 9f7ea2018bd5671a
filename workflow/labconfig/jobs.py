"""The command-line arguments of each job, from a resolved configuration.

Each ``*_args`` function returns the named arguments of one rule's job: a value is one argument
(str or number) or a list of arguments (an option that may be absent is an empty list). Rules
write every one as ``{params.name:q}``, so Snakemake shell-quotes each argument: a string
option holding a quote or a shell metacharacter reaches the stage intact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from robustlab.variants import VARIANT_KEYS

from .external import figure_entry
from .folders import folder_fingerprint, folder_prepare_options, is_folder_dataset
from .resolve import (
    EPS_KEYS,
    EVALUATION_KEYS,
    SANITY_REFERENCE,
    Resolved,
    as_json,
    attack_norm,
    clat_epochs,
    pretrain_epochs,
    with_budgets,
)

Args = dict[str, Any]


def select_levels(levels: Any, eps_list: Sequence[float]) -> list[tuple[int, float]]:
    """(level, eps) pairs of a `levels` setting: all, largest, or 1-based positions."""
    pairs = list(enumerate((float(e) for e in eps_list), start=1))
    if levels in (None, "all"):
        return pairs
    if levels == "largest":
        return pairs[-1:]
    return [pairs[i - 1] for i in levels]


def points_option(points: int | None) -> list[str]:
    """--max-images of a stage that keeps a class-stratified subset of the test images."""
    return [] if points is None else ["--max-images", str(points), "--subset", "stratified"]


def level_options(pairs: Iterable[tuple[int, float]]) -> list[str]:
    """--level/--eps arguments of (level, eps) pairs."""
    return [arg for level, eps in pairs for arg in ("--level", str(level), "--eps", repr(eps))]


def arch_base(cfg: Resolved, arch: str) -> str:
    """The registered architecture a grid entry builds."""
    return cfg["architectures"][arch].get("arch", arch)


def arch_options(cfg: Resolved, arch: str) -> dict[str, Any]:
    """Constructor options of a grid entry (without its `arch` name)."""
    return {k: v for k, v in cfg["architectures"][arch].items() if k != "arch"}


def attack_config(cfg: Resolved, name: str) -> dict[str, Any]:
    """Constructor parameters of an attack (its evaluation keys removed)."""
    return {k: v for k, v in cfg["attacks"][name].items() if k not in EVALUATION_KEYS}


def attack_levels(cfg: Resolved, dataset: str, name: str) -> list[tuple[int, float]]:
    """(level, eps) pairs an attack runs at on a dataset."""
    eps_list = cfg["datasets"][dataset][EPS_KEYS[attack_norm(cfg.config, name)]]
    return select_levels(cfg["attacks"][name].get("levels"), eps_list)


def transfer_pairs(cfg: Resolved, dataset: str) -> list[tuple[str, int, float]]:
    """(attack, level, eps) the transfer examples are crafted at on a dataset."""
    settings = cfg["transfer"]
    eps_list = cfg["datasets"][dataset]["eps"]
    return [
        (name, level, eps)
        for name in settings["attacks"]
        for level, eps in select_levels(settings.get("levels"), eps_list)
    ]


def technique_config(cfg: Resolved, dataset: str, technique: str) -> dict[str, Any]:
    """A base technique's parameters on a dataset (its eps budget resolved; a variant's
    technique, seed and pretrained keys left out)."""
    options = {k: v for k, v in cfg["techniques"][technique].items() if k not in VARIANT_KEYS}
    return with_budgets(cfg.config, dataset, options)


def run_seed(cfg: Resolved, technique: str) -> int:
    """The training seed of a technique's runs: the variant's own, else the global seed."""
    seed = cfg.variant(technique).seed
    return cfg["seed"] if seed is None else seed


def variant_options(cfg: Resolved, technique: str) -> list[str]:
    """--variant KEY of a named variant's training job (recorded in its card); none for a
    registered technique, whose card stays as before variants."""
    variant = cfg.variant(technique)
    return [] if variant.key == variant.technique else ["--variant", variant.key]


def train_config(cfg: Resolved, dataset: str) -> dict[str, Any]:
    """train: on a dataset (val_pgd_eps resolved)."""
    return with_budgets(cfg.config, dataset, cfg["train"])


def clat_config(cfg: Resolved, dataset: str, technique: str) -> dict[str, Any]:
    """An X+clat technique's CLAT parameters on a dataset (eps resolved, pretrain_epochs out)."""
    skip = ("pretrain_epochs", *VARIANT_KEYS)
    options = {k: v for k, v in cfg["techniques"][technique].items() if k not in skip}
    options["epochs"] = clat_epochs(cfg.config, technique)
    return with_budgets(cfg.config, dataset, options)


def prepare_args(cfg: Resolved, dataset: str, split: str) -> Args:
    """A prepare job; a folder dataset adds its kind options and its listing's fingerprint (a
    parameter only, so a changed folder reruns the job)."""
    entry = cfg["datasets"][dataset]
    folder = is_folder_dataset(entry)
    return {
        "size": entry[f"{split}_size"] or "all",
        "seed": entry["subset_seed"],
        "source": ["--source-dir", entry["source_dir"]] if entry.get("source_dir") else [],
        "download": ["--download"] if entry.get("download") else [],
        "kind": folder_prepare_options(entry) if folder else [],
        "fingerprint": folder_fingerprint(entry["source_dir"], split) if folder else "",
    }


def corrupt_args(cfg: Resolved) -> Args:
    settings = cfg["corruptions"]
    return {
        "severities": [str(s) for s in settings["severities"]],
        "points": points_option(settings.get("points")),
        "seed": cfg["seed"],
    }


def perturb_args(cfg: Resolved) -> Args:
    settings = cfg["perturbations"]
    return {
        "length": settings["length"],
        "points": points_option(settings.get("points")),
        "seed": cfg["seed"],
    }


def system_noise_args(cfg: Resolved) -> Args:
    settings = cfg["system_noise"]
    if settings.get("stored_size") is not None:
        stored = ["--stored-size", str(settings["stored_size"])]
    else:
        stored = ["--stored-scale", repr(settings.get("stored_scale", 2.0))]
    return {
        "stored_size": stored,
        "format": settings["format"],
        "quality": settings["quality"],
        "grid": settings["grid"],
        "points": points_option(settings.get("points")),
        "seed": cfg["seed"],
    }


def train_args(cfg: Resolved, dataset: str, arch: str, technique: str) -> Args:
    """A base technique's training job (out_dir and threads come from the rule)."""
    snapshot = cfg.snapshots.get(technique)
    return {
        "arch": arch_base(cfg, arch),
        "arch_config": as_json(arch_options(cfg, arch)),
        "technique": cfg.variant(technique).technique,
        "variant": variant_options(cfg, technique),
        "technique_config": as_json(technique_config(cfg, dataset, technique)),
        "train_config": as_json(train_config(cfg, dataset)),
        "val_size": cfg["datasets"][dataset]["val_size"],
        "seed": run_seed(cfg, technique),
        # weights CLAT runs start from; a parameter, so adding such a run retrains X with it
        "snapshots": [] if snapshot is None else ["--snapshot-epoch", str(snapshot)],
    }


def clat_args(cfg: Resolved, dataset: str, arch: str, technique: str) -> Args:
    """An X+clat fine-tuning job (``base``: the registered X, ``pretrained``: the technique key
    of the run it starts from)."""
    variant = cfg.variant(technique)
    return {
        "arch": arch_base(cfg, arch),
        "base": variant.technique[: -len("+clat")],
        "variant": variant_options(cfg, technique),
        "init_epoch": pretrain_epochs(cfg.config, technique),
        "clat_config": as_json(clat_config(cfg, dataset, technique)),
        "train_config": as_json(train_config(cfg, dataset)),
        "val_size": cfg["datasets"][dataset]["val_size"],
        "seed": run_seed(cfg, technique),
    }


def clat_inputs(cfg: Resolved, dataset: str, arch: str, technique: str) -> dict[str, Any]:
    """The pretrained model an X+clat job starts from, and X's snapshot when not its last epoch."""
    base_dir = f"models/{dataset}/{arch}/{cfg.pretrained(technique)}"
    snapshot = pretrain_epochs(cfg.config, technique) < cfg["train"]["epochs"]
    return {
        "pretrained": f"{base_dir}/model.safetensors",
        "snapshot": f"{base_dir}/pretrain_snapshot.safetensors" if snapshot else [],
    }


def attack_args(cfg: Resolved, dataset: str, attack: str) -> Args:
    return {
        "attack_config": as_json(attack_config(cfg, attack)),
        "levels": level_options(attack_levels(cfg, dataset, attack)),
        "points": cfg["attacks"][attack].get("points") or "all",
        "batch_size": cfg["evaluation"]["batch_size"],
        "seed": cfg["seed"],
    }


def craft_transfer_args(cfg: Resolved, dataset: str) -> Args:
    # full-length iterations: stopping at the first iterate that fools the source would make
    # weaker transfer examples
    attacks = {
        name: {k: v for k, v in attack_config(cfg, name).items() if k != "early_stop"}
        for name in cfg["transfer"]["attacks"]
    }
    crafts = [f"{name}:{level}:{eps!r}" for name, level, eps in transfer_pairs(cfg, dataset)]
    return {
        "attacks": as_json(attacks),
        "crafts": [arg for craft in crafts for arg in ("--craft", craft)],
        "points": cfg["transfer"].get("points") or "all",
        "batch_size": cfg["evaluation"]["batch_size"],
        "seed": cfg["seed"],
    }


def probe_args(cfg: Resolved, dataset: str) -> Args:
    return {
        "reference": as_json(attack_config(cfg, SANITY_REFERENCE)),
        "settings": as_json(cfg["sanity"]),
        "eps": [repr(float(e)) for e in cfg["datasets"][dataset]["eps"]],
        "batch_size": cfg["evaluation"]["batch_size"],
        "seed": cfg["seed"],
    }


def run_options(cfg: Resolved) -> list[str]:
    """--run D/A/T for every run of the grid."""
    return [arg for run in cfg.runs for arg in ("--run", run)]


def clat_variant_options(cfg: Resolved) -> list[str]:
    """--clat-technique KEY for every CLAT variant of the grid (a key without "+clat"), so the
    comparisons orient it as run B; none without variants."""
    return [
        arg
        for key in cfg.clat_techniques
        if cfg.variant(key).key != cfg.variant(key).technique
        for arg in ("--clat-technique", key)
    ]


def attack_options(cfg: Resolved) -> list[str]:
    """--attack NAME for every configured attack."""
    return [arg for name in cfg.attacks for arg in ("--attack", name)]


def baseline_options(cfg: Resolved) -> list[str]:
    """--baseline options normalising mCE by the configured baseline run of each dataset."""
    base = cfg["baseline"]
    return [
        a for d in cfg.datasets for a in ("--baseline", f"{d}={base['arch']}/{base['technique']}")
    ]


def report_options(cfg: Resolved) -> list[str]:
    """--run and --attack-norm options of stages.figures and stages.report."""
    norms = [
        arg
        for name in cfg.attacks
        for arg in ("--attack-norm", f"{name}={attack_norm(cfg.config, name)}")
    ]
    return run_options(cfg) + norms


def note_options(cfg: Resolved) -> list[str]:
    """--config-note TEXT for every adjustment the resolution made (none: no option)."""
    return [arg for note in cfg.notes for arg in ("--config-note", note)]


def figure_names(cfg: Resolved) -> list[str]:
    """The report's figures: a function of the grid (robustlab.report.plan imports no torch)."""
    from robustlab.report.plan import figure_names as plan

    archs = {arch: cfg["architectures"][arch] for arch in cfg.trained_architectures}
    archs.update({name: figure_entry(cfg.config, name) for name in cfg.external_architectures})
    return plan(
        archs,
        [cfg.variant(t).technique for t in cfg.run_techniques],
        transfer=bool(cfg["transfer"]["attacks"]),
        corruptions=bool(cfg["corruptions"]["names"]),
        perturbations=bool(cfg["perturbations"]["names"]),
    )
