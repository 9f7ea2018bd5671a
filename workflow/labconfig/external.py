"""external_models: models robustlab did not train, imported instead of trained.

An entry names safetensors ``weights`` of a registered ``arch`` (with its ``options``) or a
torch.export ``program`` (.pt2), the ``dataset`` it classifies, the input ``normalization`` it
expects and the ``technique`` name its run gets. Listed in grid.architectures, it gets one run,
``{dataset}/{name}/{technique}``, whose model folder the import job writes. The checks here are
the cheap ones (keys, names, suffix, the file exists); the import job (stages.import_model)
checks the file's content, keys, shapes and class count.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .names import ARCHITECTURES, CLAT_SUFFIX

#: the technique an external model's run gets when its entry names none
DEFAULT_TECHNIQUE = "external"
#: file suffix of each kind of external model
SUFFIXES = {"weights": ".safetensors", "program": ".pt2"}


def external_entries(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The external_models: entries (none: empty)."""
    return dict(cfg.get("external_models") or {})


def grid_externals(cfg: Mapping[str, Any]) -> list[str]:
    """The grid's architectures that are external models, in grid order."""
    entries = external_entries(cfg)
    return [a for a in cfg["grid"]["architectures"] if a in entries]


def external_kind(entry: Mapping[str, Any]) -> str:
    """``weights`` or ``program``: what the entry imports."""
    return "program" if "program" in entry else "weights"


def external_technique(entry: Mapping[str, Any]) -> str:
    """The technique name of the entry's run."""
    return str(entry.get("technique", DEFAULT_TECHNIQUE))


def external_runs(cfg: Mapping[str, Any]) -> list[str]:
    """``dataset/name/technique`` of every external model of the grid."""
    entries = external_entries(cfg)
    return [
        f"{entries[a]['dataset']}/{a}/{external_technique(entries[a])}" for a in grid_externals(cfg)
    ]


def external_source(cfg: Mapping[str, Any], name: str) -> str:
    """The file an external model is imported from (an input of its import job)."""
    entry = external_entries(cfg)[name]
    return str(entry[external_kind(entry)])


def check_external_models(cfg: Mapping[str, Any], declared_archs: set[str]) -> list[str]:
    """Cross-key checks of external_models: (the schema checked each entry's keys and types).

    ``declared_archs``: the keys of architectures: as written (before resolution adds one per
    grid entry). The files of the grid's entries must exist with their kind's suffix.
    """
    problems = []
    in_grid = set(grid_externals(cfg))
    for name, entry in external_entries(cfg).items():
        key = f"external_models.{name}"
        problems += _check_names(cfg, key, name, declared_archs)
        problems += _check_kind(key, entry)
        technique = external_technique(entry)
        if technique.endswith(CLAT_SUFFIX):
            problems.append(
                f"{key}.technique: {technique!r}: CLAT fine-tuning does not start from an "
                f"external model (it needs the training run's pretraining snapshot); name the "
                f"run's technique without {CLAT_SUFFIX!r} (default {DEFAULT_TECHNIQUE!r})"
            )
        norm = entry["normalization"]
        if len(norm["mean"]) != len(norm["std"]):
            problems.append(
                f"{key}.normalization: mean has {len(norm['mean'])} values but std has "
                f"{len(norm['std'])}; give one per image channel"
            )
        if name in in_grid:
            problems += _check_grid_entry(cfg, key, entry)
    return problems


def _check_names(cfg: Mapping[str, Any], key: str, name: str, declared: set[str]) -> list[str]:
    if name in ARCHITECTURES or name in declared:
        where = "a registered architecture" if name in ARCHITECTURES else "a key of architectures:"
        return [
            f"{key}: {name!r} is also {where}; give the external model a name of its own "
            f"(it names the run's folder models/<dataset>/{name}/...)"
        ]
    if name in (cfg.get("sweeps") or {}):
        return [f"{key}: {name!r} is also the name of a sweep; rename one of them"]
    return []


def _check_kind(key: str, entry: Mapping[str, Any]) -> list[str]:
    kinds = [k for k in SUFFIXES if k in entry]
    if len(kinds) != 1:
        return [
            f"{key}: give exactly one of `weights` (a .safetensors file of a registered `arch`) "
            f"and `program` (a torch.export .pt2 file); found {kinds or 'neither'}"
        ]
    if kinds == ["weights"] and "arch" not in entry:
        return [
            f"{key}.arch: missing; safetensors weights need the registered architecture they "
            f"belong to (e.g. arch: wrn_16_4, options: {{widen_factor: 4}})"
        ]
    if kinds == ["program"]:
        extra = [k for k in ("arch", "options", "key_prefix") if k in entry]
        if extra:
            return [
                f"{key}: {', '.join(extra)} apply to `weights` only; a torch.export program "
                f"carries its own architecture"
            ]
        if "family" not in entry:
            return [
                f"{key}.family: missing; a program's architecture family (cnn, transformer or "
                f"mlp) cannot be read from it; the report groups models by family"
            ]
    return []


def _check_grid_entry(cfg: Mapping[str, Any], key: str, entry: Mapping[str, Any]) -> list[str]:
    problems = []
    if entry["dataset"] not in cfg["grid"]["datasets"]:
        problems.append(
            f"{key}.dataset: {entry['dataset']!r} is not in grid.datasets "
            f"({', '.join(cfg['grid']['datasets'])}); add it there or remove the model from "
            f"grid.architectures"
        )
    kind = external_kind(entry)
    path = Path(str(entry.get(kind, "")))
    if kind not in entry:
        return problems
    if path.suffix != SUFFIXES[kind]:
        problems.append(
            f"{key}.{kind}: {str(path)!r} does not end in {SUFFIXES[kind]}; "
            + (
                "robustlab reads weights only as safetensors (pickled .pt/.pth/.bin files are "
                "refused; see docs/external_models.md to convert one)"
                if kind == "weights"
                else "programs are torch.export archives written by torch.export.save"
            )
        )
    elif not path.is_file():
        problems.append(
            f"{key}.{kind}: {str(path)!r} does not exist (relative paths start at the "
            f"repository root)"
        )
    return problems


def import_args(cfg: Any, dataset: str, name: str) -> dict[str, Any]:
    """The arguments of an external model's import job (stages.import_model)."""
    entry = external_entries(cfg.config)[name]
    from .resolve import as_json

    kind = external_kind(entry)
    norm = entry["normalization"]
    args: dict[str, Any] = {
        "source": [f"--{kind}", str(entry[kind])],
        "normalization": as_json({"mean": norm["mean"], "std": norm["std"]}),
        "arch": [],
        "family": [],
        "key_prefix": [],
    }
    if kind == "weights":
        args["arch"] = [
            "--arch",
            str(entry["arch"]),
            "--arch-config",
            as_json(entry.get("options") or {}),
        ]
        if "key_prefix" in entry:
            args["key_prefix"] = ["--key-prefix", str(entry["key_prefix"])]
    if "family" in entry:
        args["family"] = ["--family", str(entry["family"])]
    return args


def figure_entry(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An external model as the report's figure plan sees it (as its card describes it)."""
    entry = external_entries(cfg)[name]
    if external_kind(entry) == "program":
        return {"arch": name}
    return {"arch": entry["arch"], **(entry.get("options") or {})}
