"""params.yaml -> a resolved configuration: validated, sweeps expanded, defaults filled.

``resolve(config)`` never changes its input. It checks the schema and the rules across keys the
schema cannot express, and raises :class:`ConfigError` listing every problem, each naming the
key and what is allowed, before any job starts. What it had to adjust (a subset size above its
split) is kept in ``Resolved.notes``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustlab.variants import VARIANT_KEYS, Variant, clat_base, variant_of

from .external import check_external_models, external_runs, grid_externals
from .folders import (
    dataset_entry_problems,
    fill_folder_defaults,
    folder_problems,
    is_folder_dataset,
)
from .names import ARCHITECTURES, ATTACK_NORMS, DATASETS, SPLIT_SIZES, TECHNIQUES
from .schema import schema_problems, technique_option_problems

#: norm -> the datasets: key holding its eps levels
EPS_KEYS = {"linf": "eps", "l2": "eps_l2", "l1": "eps_l1"}
#: keys of an attacks: entry that configure the evaluation, not the attack itself
EVALUATION_KEYS = ("levels", "points")
#: the white-box attack the evaluation sanity checks compare against (eps 0, more steps)
SANITY_REFERENCE = "pgd_linf"
#: keys holding a training budget: technique eps (CLAT's too) and train.val_pgd_eps
BUDGET_KEYS = ("eps", "val_pgd_eps")

#: ``sample(space, count, seed) -> {variant name: options}`` (robustlab.models.sweep)
Sampler = Callable[[dict, int, int], dict[str, dict]]


class ConfigError(ValueError):
    """An invalid configuration; the message lists every problem, one key per line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        listing = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"invalid configuration (params.yaml and --configfile presets):\n{listing}"
        )


@dataclass(frozen=True)
class Resolved:
    """A checked configuration and the grid it defines (treat ``config`` as read-only)."""

    config: dict[str, Any]
    notes: tuple[str, ...] = ()
    #: base technique -> the epoch whose weights its CLAT runs start from (before its last)
    snapshots: dict[str, int] = field(default_factory=dict)
    #: technique key -> its variant (registered technique, pretrained run, seed), for the
    #: grid's techniques and the runs CLAT starts from
    variants: dict[str, Variant] = field(default_factory=dict)

    def variant(self, technique: str) -> Variant:
        """The variant of a technique key (a name outside the grid: itself, registered)."""
        return self.variants.get(technique) or variant_of(technique)

    def pretrained(self, technique: str) -> str | None:
        """The technique key of the run a CLAT technique starts from (None: not CLAT)."""
        return self.variant(technique).pretrained

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    @property
    def datasets(self) -> list[str]:
        return list(self.config["grid"]["datasets"])

    @property
    def architectures(self) -> list[str]:
        return list(self.config["grid"]["architectures"])

    @property
    def techniques(self) -> list[str]:
        return list(self.config["grid"]["techniques"])

    @property
    def external_architectures(self) -> list[str]:
        """The grid's external models (external_models:): imported, not trained."""
        return grid_externals(self.config)

    @property
    def trained_architectures(self) -> list[str]:
        """The grid's architectures robustlab trains."""
        external = set(self.external_architectures)
        return [a for a in self.architectures if a not in external]

    @property
    def runs(self) -> list[str]:
        """Every run of the grid as ``dataset/arch/technique``: each trained architecture with
        each technique, and each external model once (on its dataset, under its technique)."""
        trained = [
            f"{d}/{a}/{t}"
            for d in self.datasets
            for a in self.trained_architectures
            for t in self.techniques
        ]
        return trained + external_runs(self.config)

    @property
    def run_techniques(self) -> list[str]:
        """The techniques of the runs (the grid's and the external models'), sorted."""
        return sorted({run.rsplit("/", 1)[1] for run in self.runs})

    @property
    def clat_techniques(self) -> list[str]:
        return [t for t in self.techniques if self.pretrained(t) is not None]

    @property
    def trained_techniques(self) -> list[str]:
        """Base techniques the DAG trains: the grid's and those CLAT runs start from."""
        return sorted({self.pretrained(t) or t for t in self.techniques})

    @property
    def attacks(self) -> list[str]:
        return list(self.config["attacks"])


def load_config(*paths: str | Path) -> dict[str, Any]:
    """YAML files deep-merged in order, as Snakemake merges --configfile over params.yaml."""

    def merge(base: dict, override: Mapping) -> dict:
        out = dict(base)
        for key, value in override.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    config: dict[str, Any] = {}
    for path in paths:
        config = merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def _sample_sweep(space: dict, count: int, seed: int) -> dict[str, dict]:
    # imported only when sweeps are declared: it loads torch, which slows every dry run
    from robustlab.models.sweep import sample_architectures

    return sample_architectures(space, count, seed)


def resolve(config: Mapping[str, Any], sample: Sampler | None = None) -> Resolved:
    """Check ``config`` and return it resolved; raise ConfigError listing every problem.

    Resolved: attacks a preset switched off (null) removed, the sweeps' variants added to the
    grid and to architectures:, an (empty) entry under architectures: and techniques: for every
    name the grid uses. ``sample`` replaces robustlab.models.sweep.sample_architectures.
    """
    cfg = copy.deepcopy(dict(config))
    # a preset switches off an attack of params.yaml by setting its entry to null
    if isinstance(cfg.get("attacks"), dict):
        cfg["attacks"] = {k: v for k, v in cfg["attacks"].items() if v is not None}
    problems = schema_problems(cfg)
    if problems:
        raise ConfigError(problems)
    problems = check_external_models(cfg, set(cfg["architectures"]))
    problems += _expand_architectures(cfg, sample or _sample_sweep)
    notes: list[str] = []
    problems += _check_datasets(cfg, notes)
    variants, variant_problems = _resolve_variants(cfg)
    problems += variant_problems
    if not variant_problems:
        problems += _fill_techniques(cfg, variants)
    snapshots, snapshot_problems = _snapshots(cfg, variants)
    problems += snapshot_problems
    if all(d in cfg["datasets"] for d in cfg["grid"]["datasets"]):
        problems += _check_budgets(cfg, variants)
        problems += _check_attacks(cfg)
    if problems:
        raise ConfigError(problems)
    return Resolved(cfg, tuple(notes), snapshots, variants)


def _expand_architectures(cfg: dict, sample: Sampler) -> list[str]:
    """Add the sweeps' variants to the grid; check every grid entry names a registered one."""
    grid = cfg["grid"]["architectures"]
    for name, sweep in (cfg.get("sweeps") or {}).items():
        try:
            variants = sample(sweep["space"], sweep["count"], sweep["seed"])
        except (KeyError, ValueError) as err:
            return [f"sweeps.{name}: {err}"]
        for variant, options in variants.items():
            cfg["architectures"][variant] = options
            if variant not in grid:
                grid.append(variant)
    if not grid:
        return [
            "grid.architectures: the list is empty; name at least one architecture (a registered "
            "one, a key of architectures: or a sweep's variants)"
        ]
    problems = []
    external = set(grid_externals(cfg))
    for i, arch in enumerate(grid):
        if arch in external:
            continue  # imported, not built: checked by check_external_models
        options = cfg["architectures"].setdefault(arch, {})
        if options.get("arch", arch) not in ARCHITECTURES:
            problems.append(
                f"grid.architectures.{i}: {arch!r} is not allowed; allowed values: "
                f"{', '.join(ARCHITECTURES)}, a key of architectures: whose `arch` option "
                f"names one, or a key of external_models:"
            )
    return problems


def _check_datasets(cfg: dict, notes: list[str]) -> list[str]:
    """Every grid dataset has an entry whose subset sizes fit its splits (a folder's sizes are
    unknown until read: workflow/labconfig/folders.py checks what it can)."""
    problems = []
    for name, entry in cfg["datasets"].items():
        problems += dataset_entry_problems(name, entry)
        if is_folder_dataset(entry):
            fill_folder_defaults(name, entry)
    if problems:
        return problems
    for i, dataset in enumerate(cfg["grid"]["datasets"]):
        entry = cfg["datasets"].get(dataset)
        if entry is None and dataset not in DATASETS:
            problems.append(
                f"grid.datasets.{i}: {dataset!r} is neither a registered dataset "
                f"({', '.join(DATASETS)}) nor a key of datasets:; for a folder of your own images "
                f"add datasets.{dataset} with kind: image_folder, image_size, train_size, "
                f"test_size, val_size and subset_seed (docs/image_folders.md)"
            )
            continue
        if entry is None:
            problems.append(
                f"grid.datasets: {dataset!r} has no entry under datasets:; add datasets.{dataset} "
                f"with train_size, test_size, val_size, subset_seed and eps"
            )
            continue
        if is_folder_dataset(entry):
            problems += folder_problems(cfg, dataset, entry)
            continue
        sizes = {}
        for split, total in SPLIT_SIZES[dataset].items():
            size = entry[f"{split}_size"]
            sizes[split] = total if size is None else min(size, total)
            if size is not None and size > total:
                notes.append(
                    f"datasets.{dataset}.{split}_size: {size} is above the {split} split "
                    f"({total} images); all {total} are used"
                )
        if entry["val_size"] >= sizes["train"]:
            problems.append(
                f"datasets.{dataset}.val_size: {entry['val_size']} must be smaller than the "
                f"training subset ({sizes['train']}, train_size): the validation images are held "
                f"out of it and the rest are trained on"
            )
    return problems


def clat_epochs(cfg: Mapping[str, Any], technique: str) -> int:
    """CLAT epochs of an X+clat technique (null: half of train.epochs, at least 1)."""
    epochs = cfg["techniques"].get(technique, {}).get("epochs")
    return epochs if epochs is not None else max(cfg["train"]["epochs"] // 2, 1)


def pretrain_epochs(cfg: Mapping[str, Any], technique: str) -> int:
    """Epochs of the base technique's run CLAT starts from (default: equal total budget)."""
    clat = cfg["techniques"].get(technique, {})
    if clat.get("pretrain_epochs") is not None:
        return clat["pretrain_epochs"]
    return max(cfg["train"]["epochs"] - clat_epochs(cfg, technique), 1)


def _resolve_variants(cfg: dict) -> tuple[dict[str, Variant], list[str]]:
    """Every grid technique as a Variant; a name that is not registered must be a key of
    techniques: whose `technique` option names a registered one (docs/configuration.md). A
    variant's entry is completed with its registered technique's options (its own win)."""
    problems: list[str] = []
    grid = cfg["grid"]["techniques"]
    variants: dict[str, Variant] = {}
    for i, key in enumerate(grid):
        entry = cfg["techniques"].get(key)
        if key in TECHNIQUES:
            variants[key] = variant_of(key)
            continue
        if not isinstance(entry, dict) or "technique" not in entry:
            problems.append(
                f"grid.techniques.{i}: {key!r} is neither a registered technique "
                f"({', '.join(TECHNIQUES)}) nor a key of techniques: with a `technique` option "
                f"naming one (a variant, docs/configuration.md)"
            )
            continue
        variant = variant_of(key, entry)
        where = f"techniques.{key}"
        if variant.technique not in TECHNIQUES:
            problems.append(
                f"{where}.technique: {variant.technique!r} is not a registered technique; "
                f"allowed values: {', '.join(TECHNIQUES)}"
            )
            continue
        # a variant's options override those of its registered technique's entry
        entry = {**(cfg["techniques"].get(variant.technique) or {}), **entry}
        cfg["techniques"][key] = entry
        seed = entry.get("seed")
        if "seed" in entry and (not isinstance(seed, int) or isinstance(seed, bool)):
            problems.append(f"{where}.seed: {seed!r} is not an integer (the run's training seed)")
        options = {k: v for k, v in entry.items() if k not in VARIANT_KEYS}
        problems += technique_option_problems(where, variant.technique, options)
        base = clat_base(variant.technique)
        if "pretrained" in entry and base is None:
            problems.append(
                f"{where}.pretrained: only a CLAT variant (technique X+clat) starts from "
                f"another run; remove it or set technique to {variant.technique}+clat"
            )
        elif "pretrained" in entry:
            pre = entry["pretrained"]
            if pre not in grid:
                problems.append(
                    f"{where}.pretrained: {pre!r} is not in grid.techniques; name a technique "
                    f"of the grid whose technique is {base}"
                )
            elif variant_of(pre, cfg["techniques"].get(pre)).technique != base:
                problems.append(
                    f"{where}.pretrained: {pre!r} trains "
                    f"{variant_of(pre, cfg['techniques'].get(pre)).technique}, not {base}; "
                    f"{variant.technique} fine-tunes a {base} run"
                )
        variants[key] = variant
    for variant in list(variants.values()):
        pre = variant.pretrained
        if pre is not None and pre not in variants and pre in TECHNIQUES:
            variants[pre] = variant_of(pre)  # trained for CLAT only, as before variants
    return variants, problems


def _fill_techniques(cfg: dict, variants: Mapping[str, Variant]) -> list[str]:
    """An entry for every technique the DAG trains; CLAT's pretraining fits train.epochs."""
    problems = []
    epochs = cfg["train"]["epochs"]
    for technique in variants:
        cfg["techniques"].setdefault(technique, {})
    for technique in cfg["grid"]["techniques"]:
        base = variants[technique].pretrained
        if base is None:
            continue
        pre = pretrain_epochs(cfg, technique)
        if not 1 <= pre <= epochs:
            problems.append(
                f"techniques.{technique}.pretrain_epochs: {pre} is outside 1..train.epochs "
                f"({epochs}); CLAT starts from {base}'s weights after that epoch"
            )
    return problems


def _snapshots(cfg: dict, variants: Mapping[str, Variant]) -> tuple[dict[str, int], list[str]]:
    """Per pretrained run, the epoch its CLAT runs start from (the final epoch needs none)."""
    epochs: dict[str, set[int]] = {}
    found_clat: dict[str, list[str]] = {}
    for technique in cfg["grid"]["techniques"]:
        variant = variants.get(technique)
        base = variant.pretrained if variant else None
        if base is not None and pretrain_epochs(cfg, technique) < cfg["train"]["epochs"]:
            epochs.setdefault(base, set()).add(pretrain_epochs(cfg, technique))
            found_clat.setdefault(base, []).append(technique)
    problems = [
        f"techniques.{found_clat[base][0]}: the CLAT runs starting from {base} "
        f"({', '.join(found_clat[base])}) use different pretrain_epochs ({sorted(found)}); give "
        f"them the same one (one snapshot per run)"
        for base, found in epochs.items()
        if len(found) > 1
    ]
    return {base: min(found) for base, found in epochs.items()}, problems


def _budget_keys(cfg: Mapping[str, Any], variants: Mapping[str, Variant]) -> list[tuple[str, Any]]:
    """(key path, value) of every training budget the grid's jobs use."""
    used = set(variants)
    out = [
        (f"techniques.{t}.eps", cfg["techniques"][t]["eps"])
        for t in sorted(used)
        if "eps" in cfg["techniques"][t]
    ]
    if "val_pgd_eps" in cfg["train"]:
        out.append(("train.val_pgd_eps", cfg["train"]["val_pgd_eps"]))
    return out


def _check_budgets(cfg: dict, variants: Mapping[str, Variant]) -> list[str]:
    """A level exists in every grid dataset; a number is one budget only where eps lists agree."""
    problems = []
    datasets = cfg["grid"]["datasets"]
    eps_lists = {d: cfg["datasets"][d]["eps"] for d in datasets}
    for key, value in _budget_keys(cfg, variants):
        if isinstance(value, dict):
            for d in datasets:
                if value["level"] > len(eps_lists[d]):
                    problems.append(
                        f"{key}: level {value['level']} is outside 1..{len(eps_lists[d])} "
                        f"(the number of datasets.{d}.eps values)"
                    )
        elif value != "largest" and len({tuple(e) for e in eps_lists.values()}) > 1:
            problems.append(
                f"{key}: {value!r} is one budget for every dataset, but the grid's datasets "
                f"({', '.join(datasets)}) have different eps lists; write `largest` or "
                f"{{level: N}} (the N-th value of each dataset's eps list)"
            )
    return problems


def attack_norm(cfg: Mapping[str, Any], name: str) -> str:
    """linf, l2 or l1: the norm whose eps levels an attack of attacks: runs at."""
    norm = ATTACK_NORMS[name]
    return norm if norm is not None else str(cfg["attacks"][name].get("norm", "Linf")).lower()


def _check_attacks(cfg: dict) -> list[str]:
    """Cross-key checks of attacks: and transfer: that the schema cannot express."""
    problems = []
    for dataset in cfg["grid"]["datasets"]:
        entry = cfg["datasets"][dataset]
        for name in cfg["attacks"]:
            norm = attack_norm(cfg, name)
            key = EPS_KEYS.get(norm)
            if key is None:
                problems.append(f"attacks.{name}.norm: must be Linf, L2 or L1")
                continue
            if key not in entry:
                problems.append(
                    f"datasets.{dataset}.{key}: missing; attacks.{name} is an "
                    f"{norm} attack and runs at the {key} levels of every dataset"
                )
                continue
            levels = cfg["attacks"][name].get("levels")
            if isinstance(levels, list) and any(not 1 <= i <= len(entry[key]) for i in levels):
                problems.append(
                    f"attacks.{name}.levels: {levels} has a position outside 1..{len(entry[key])} "
                    f"(the number of datasets.{dataset}.{key} values)"
                )
        for key in ("eps_l2", "eps_l1"):
            if key in entry and len(entry[key]) != len(entry["eps"]):
                problems.append(
                    f"datasets.{dataset}.{key}: {len(entry[key])} values but eps has "
                    f"{len(entry['eps'])}; every norm needs one budget per level"
                )
    if SANITY_REFERENCE not in cfg["attacks"]:
        problems.append(
            f"attacks: {SANITY_REFERENCE} is missing; the evaluation sanity checks compare "
            f"against it (eps 0, more steps and restarts, random noise, a very large eps)"
        )
    for i, name in enumerate(cfg["transfer"]["attacks"]):
        if name not in cfg["attacks"]:
            problems.append(
                f"transfer.attacks.{i}: {name!r} is not configured under attacks: "
                f"(configured: {', '.join(cfg['attacks'])})"
            )
        elif attack_norm(cfg, name) != "linf":
            problems.append(f"transfer.attacks.{i}: {name!r} is not an L-inf attack")
    return problems


def budget(cfg: Mapping[str, Any], dataset: str, value: Any) -> Any:
    """A training budget on a dataset: largest, {level: N} (1-based) or the number itself."""
    if value == "largest":
        return cfg["datasets"][dataset]["eps"][-1]
    if isinstance(value, Mapping):
        return cfg["datasets"][dataset]["eps"][value["level"] - 1]
    return value


def with_budgets(cfg: Mapping[str, Any], dataset: str, options: Mapping[str, Any]) -> dict:
    """``options`` with its budget keys (eps, val_pgd_eps) resolved for ``dataset``."""
    return {k: budget(cfg, dataset, v) if k in BUDGET_KEYS else v for k, v in options.items()}


def as_json(value: Any) -> str:
    """A parameter as a canonical JSON string: Snakemake sees any change and reruns the job."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def params_hash(resolved: Resolved) -> str:
    """16 hex digits of the resolved parameters; resources: (where jobs run) left out."""
    kept = {k: v for k, v in resolved.config.items() if k != "resources"}
    return hashlib.sha256(as_json(kept).encode()).hexdigest()[:16]
