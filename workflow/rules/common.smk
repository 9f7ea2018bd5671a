# Validation of the configuration and the helpers the rules share.

import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(workflow.basedir) / "schemas" / "params.schema.yaml"


def _key_path(error):
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error):
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}"
    return error.message


def validate_config(config):
    """Check the configuration against the schema and across keys; fail naming the key."""
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
        for dataset in config["grid"]["datasets"]:
            if dataset not in config["datasets"]:
                problems.append(
                    f"  grid.datasets: {dataset!r} has no entry under datasets:; add datasets.{dataset} "
                    f"with train_size, test_size, val_size, subset_seed and eps"
                )
        for arch in config["grid"]["architectures"]:
            config["architectures"].setdefault(arch, {})
        for technique in config["grid"]["techniques"]:
            config["techniques"].setdefault(technique, {})
    if problems:
        raise ValueError("invalid configuration (params.yaml and --configfile presets):\n" + "\n".join(problems))


validate_config(config)

DATASETS = config["grid"]["datasets"]
ARCHS = config["grid"]["architectures"]
TECHNIQUES = config["grid"]["techniques"]
CORRUPTIONS = config["corruptions"]["names"]
SEED = config["seed"]
THREADS = config["threads_per_job"]
RUNS = [f"{d}/{a}/{t}" for d in DATASETS for a in ARCHS for t in TECHNIQUES]

wildcard_constraints:
    dataset="|".join(DATASETS),
    arch="|".join(ARCHS),
    technique="|".join(TECHNIQUES),
    corruption="[a-z_]+",
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


FIGURE_NAMES = [
    "accuracy_by_noise_family",
    "robust_accuracy_vs_eps",
    "corruption_accuracy_vs_severity",
]
FIGURES = expand("reports/figures/{name}.png", name=FIGURE_NAMES)
PARAMS_HASH = hashlib.sha256(as_json(config).encode()).hexdigest()[:16]


def baseline_args():
    """--baseline options normalising mCE by the configured baseline run of each dataset."""
    base = config["baseline"]
    return " ".join(f"--baseline {d}={base['arch']}/{base['technique']}" for d in DATASETS)
