# Validation of the configuration and the helpers the rules share.

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(workflow.basedir, "schemas", "params.schema.yaml")


def _key_path(error):
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error):
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}"
    return error.message


def clat_base(technique):
    """X for a technique named "X+clat", else None."""
    return technique[: -len("+clat")] if technique.endswith("+clat") else None


def pretrain_epochs(technique):
    """Epochs of the base technique's run CLAT starts from (default: equal total budget)."""
    clat = config["techniques"].get(technique, {})
    if clat.get("pretrain_epochs") is not None:
        return clat["pretrain_epochs"]
    return max(config["train"]["epochs"] - clat.get("epochs", 10), 1)


def resolve_architectures(config, schema):
    """Add the sweeps' variants to the grid; check every grid entry names a registered one."""
    sweeps = config.get("sweeps") or {}
    if sweeps:
        # imported only when sweeps are declared: it loads torch, which slows every dry run
        from robustlab.models.sweep import sample_architectures

        for name, sweep in sweeps.items():
            try:
                variants = sample_architectures(sweep["space"], sweep["count"], sweep["seed"])
            except (KeyError, ValueError) as err:
                return [f"  sweeps.{name}: {err}"]
            for variant, options in variants.items():
                config["architectures"][variant] = options
                if variant not in config["grid"]["architectures"]:
                    config["grid"]["architectures"].append(variant)
    registered = schema["$defs"]["architecture_name"]["enum"]
    problems = []
    for i, arch in enumerate(config["grid"]["architectures"]):
        options = config["architectures"].setdefault(arch, {})
        if options.get("arch", arch) not in registered:
            problems.append(
                f"  grid.architectures.{i}: {arch!r} is not allowed; allowed values: "
                f"{', '.join(registered)}, or a key of architectures: whose `arch` option names one"
            )
    return problems


def arch_base(arch):
    """The registered architecture a grid entry builds."""
    return config["architectures"][arch].get("arch", arch)


def arch_options(arch):
    """Constructor options of a grid entry (without its `arch` name)."""
    return {k: v for k, v in config["architectures"][arch].items() if k != "arch"}


def validate_config(config):
    """Check the configuration against the schema and across keys; fail naming the key."""
    # a preset switches off an attack of params.yaml by setting its entry to null
    if isinstance(config.get("attacks"), dict):
        config["attacks"] = {k: v for k, v in config["attacks"].items() if v is not None}
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        # a propertyNames failure reports the bad name; point at it
        where = _key_path(error)
        if error.validator == "propertyNames" or error.relative_schema_path and "propertyNames" in error.relative_schema_path:
            where = f"{where} (key {error.instance!r})"
        problems.append(f"  {where}: {_describe(error)}")
    if not problems:
        problems += resolve_architectures(config, schema)
    if not problems:
        for dataset in config["grid"]["datasets"]:
            if dataset not in config["datasets"]:
                problems.append(
                    f"  grid.datasets: {dataset!r} has no entry under datasets:; add datasets.{dataset} "
                    f"with train_size, test_size, val_size, subset_seed and eps"
                )
        for technique in config["grid"]["techniques"]:
            config["techniques"].setdefault(technique, {})
            base = clat_base(technique)
            if base is not None:
                config["techniques"].setdefault(base, {})
                pre = pretrain_epochs(technique)
                if not 1 <= pre <= config["train"]["epochs"]:
                    problems.append(
                        f"  techniques.{technique}.pretrain_epochs: {pre} is outside 1..train.epochs "
                        f"({config['train']['epochs']}); CLAT starts from {base}'s weights after that epoch"
                    )
    if problems:
        listing = "\n".join(problems)
        raise ValueError(f"invalid configuration (params.yaml and --configfile presets):\n{listing}")


validate_config(config)

DATASETS = config["grid"]["datasets"]
ARCHS = config["grid"]["architectures"]
TECHNIQUES = config["grid"]["techniques"]
CORRUPTIONS = config["corruptions"]["names"]
PERTURBATIONS = config["perturbations"]["names"]
SEED = config["seed"]
THREADS = config["threads_per_job"]
RUNS = [f"{d}/{a}/{t}" for d in DATASETS for a in ARCHS for t in TECHNIQUES]
CLAT_TECHNIQUES = [t for t in TECHNIQUES if clat_base(t) is not None]
# Base techniques the DAG trains: those of the grid and the pretraining runs CLAT starts from.
TRAINED_TECHNIQUES = sorted({clat_base(t) or t for t in TECHNIQUES})
# Per base technique, the epochs whose weights CLAT runs start from (the final epoch needs none).
SNAPSHOTS = {}
for _t in CLAT_TECHNIQUES:
    if pretrain_epochs(_t) < config["train"]["epochs"]:
        SNAPSHOTS.setdefault(clat_base(_t), set()).add(pretrain_epochs(_t))
for _base, _epochs in SNAPSHOTS.items():
    if len(_epochs) > 1:
        raise ValueError(
            f"invalid configuration: the CLAT runs starting from {_base} use different "
            f"pretrain_epochs ({sorted(_epochs)}); give them the same one (one snapshot per run)"
        )
SNAPSHOTS = {base: min(epochs) for base, epochs in SNAPSHOTS.items()}
# Base techniques whose training also writes pretrain_snapshot.safetensors (rule train_snapshot).
SNAPSHOT_TECHNIQUES = sorted(SNAPSHOTS)


def one_of(names):
    """A wildcard regex matching exactly these names (none: matches nothing)."""
    names = sorted(names, key=len, reverse=True)
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


wildcard_constraints:
    dataset=one_of(DATASETS),
    arch=one_of(ARCHS),
    technique=one_of(set(TECHNIQUES) | set(TRAINED_TECHNIQUES)),
    corruption=one_of(CORRUPTIONS),
    perturbation=one_of(PERTURBATIONS),
    attack=one_of(config["attacks"]),
    split="train|test",


def as_json(value):
    """A parameter as a canonical JSON string: Snakemake sees any change and reruns the job."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def dataset_params(wildcards):
    return config["datasets"][wildcards.dataset]


def stage(module):
    """The stage script a rule runs; an input, so editing it reruns the rule's jobs."""
    return f"stages/{module}.py"


def model_files(w):
    """The trained model a evaluation job reads."""
    return {
        "weights": f"models/{w.dataset}/{w.arch}/{w.technique}/model.safetensors",
        "card": f"models/{w.dataset}/{w.arch}/{w.technique}/card.json",
    }


# Norm of every attack the workflow can run (the library's `attack.norm`; tests/test_workflow.py
# keeps the two in sync). AutoAttack and Square take theirs from their `norm` parameter.
ATTACK_NORMS = {
    "fgsm": "linf",
    "pgd_linf": "linf",
    "cw_linf": "linf",
    "mim": "linf",
    "pgd_l2": "l2",
    "ddn": "l2",
    "pgd_l1": "l1",
}
EPS_KEYS = {"linf": "eps", "l2": "eps_l2", "l1": "eps_l1"}
# Keys of an attacks: entry that configure the evaluation, not the attack itself.
EVALUATION_KEYS = ("levels", "points")
ATTACKS = list(config["attacks"])


def attack_norm(name):
    """linf, l2 or l1: the norm whose eps levels an attack of attacks: runs at."""
    params = config["attacks"][name]
    if name in ATTACK_NORMS:
        return ATTACK_NORMS[name]
    return str(params.get("norm", "Linf")).lower()


def attack_config(name):
    """Constructor parameters of an attack (its evaluation keys removed)."""
    return {k: v for k, v in config["attacks"][name].items() if k not in EVALUATION_KEYS}


def select_levels(levels, eps_list):
    """(level, eps) pairs of a `levels` setting: all, largest, or 1-based positions."""
    pairs = list(enumerate((float(e) for e in eps_list), start=1))
    if levels in (None, "all"):
        return pairs
    if levels == "largest":
        return pairs[-1:]
    return [pairs[i - 1] for i in levels]


def attack_levels(dataset, name):
    """(level, eps) pairs an attack runs at on a dataset."""
    eps_list = config["datasets"][dataset][EPS_KEYS[attack_norm(name)]]
    return select_levels(config["attacks"][name].get("levels"), eps_list)


def level_args(pairs):
    """--level/--eps arguments of (level, eps) pairs."""
    return " ".join(f"--level {level} --eps {eps!r}" for level, eps in pairs)


def points_option(points):
    """--max-images of a stage that keeps a class-stratified subset of the test images."""
    return "" if points is None else f"--max-images {points} --subset stratified"


def system_stored_size():
    """--stored-size or --stored-scale of the system-noise stage."""
    settings = config["system_noise"]
    if settings.get("stored_size") is not None:
        return f"--stored-size {settings['stored_size']}"
    return f"--stored-scale {settings.get('stored_scale', 2.0)!r}"


def dataset_runs(dataset):
    """The runs (dataset/arch/technique) of one dataset."""
    return [f"{dataset}/{a}/{t}" for a in ARCHS for t in TECHNIQUES]


# The white-box attack whose outcomes the sanity checks compare against (eps 0, more steps).
SANITY_REFERENCE = "pgd_linf"


def transfer_pairs(dataset):
    """(attack, level, eps) the transfer examples are crafted at on a dataset."""
    settings = config["transfer"]
    eps_list = config["datasets"][dataset]["eps"]
    return [
        (name, level, eps)
        for name in settings["attacks"]
        for level, eps in select_levels(settings.get("levels"), eps_list)
    ]


def validate_attack_config(config):
    """Cross-key checks of attacks: and transfer: that the schema cannot express."""
    problems = []
    for dataset in config["grid"]["datasets"]:
        entry = config["datasets"][dataset]
        for name in config["attacks"]:
            key = EPS_KEYS.get(attack_norm(name))
            if key is None:
                problems.append(f"  attacks.{name}.norm: must be Linf, L2 or L1")
                continue
            if key not in entry:
                problems.append(
                    f"  datasets.{dataset}.{key}: missing; attacks.{name} is an "
                    f"{attack_norm(name)} attack and runs at the {key} levels of every dataset"
                )
                continue
            levels = config["attacks"][name].get("levels")
            if isinstance(levels, list) and any(not 1 <= i <= len(entry[key]) for i in levels):
                problems.append(
                    f"  attacks.{name}.levels: {levels} has a position outside 1..{len(entry[key])} "
                    f"(the number of datasets.{dataset}.{key} values)"
                )
        for key in ("eps_l2", "eps_l1"):
            if key in entry and len(entry[key]) != len(entry["eps"]):
                problems.append(
                    f"  datasets.{dataset}.{key}: {len(entry[key])} values but eps has "
                    f"{len(entry['eps'])}; every norm needs one budget per level"
                )
    if SANITY_REFERENCE not in config["attacks"]:
        problems.append(
            f"  attacks: {SANITY_REFERENCE} is missing; the evaluation sanity checks compare "
            f"against it (eps 0, more steps and restarts, random noise, a very large eps)"
        )
    for i, name in enumerate(config["transfer"]["attacks"]):
        if name not in config["attacks"]:
            problems.append(
                f"  transfer.attacks.{i}: {name!r} is not configured under attacks: "
                f"(configured: {', '.join(config['attacks'])})"
            )
        elif attack_norm(name) != "linf":
            problems.append(f"  transfer.attacks.{i}: {name!r} is not an L-inf attack")
    if problems:
        listing = "\n".join(problems)
        raise ValueError(f"invalid configuration (params.yaml and --configfile presets):\n{listing}")


validate_attack_config(config)

# The report's figures: a function of the grid (robustlab.report.plan imports no torch); the
# figures stage draws exactly these and fails naming one the tables cannot support.
from robustlab.report.plan import figure_names as _figure_names

FIGURE_NAMES = _figure_names(
    {arch: config["architectures"][arch] for arch in ARCHS},
    TECHNIQUES,
    transfer=bool(config["transfer"]["attacks"]),
    corruptions=bool(CORRUPTIONS),
    perturbations=bool(PERTURBATIONS),
)
FIGURES = expand("reports/figures/{name}.png", name=FIGURE_NAMES)
# resources: only say where a job runs, not what it computes: left out of the hash
PARAMS_HASH = hashlib.sha256(
    as_json({k: v for k, v in config.items() if k != "resources"}).encode()
).hexdigest()[:16]


def baseline_args():
    """--baseline options normalising mCE by the configured baseline run of each dataset."""
    base = config["baseline"]
    return " ".join(f"--baseline {d}={base['arch']}/{base['technique']}" for d in DATASETS)
