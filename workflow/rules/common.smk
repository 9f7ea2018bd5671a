# Snakemake glue over workflow/labconfig (checking, resolution and job arguments live there):
# the resolved configuration, the grid's name lists, wildcard constraints and small helpers.

import re
import sys
from pathlib import Path

from snakemake.logging import logger

# labconfig imports robustlab's torch-free modules (robustlab.variants): this repository's, not
# a copy installed from another checkout
sys.path.insert(0, str(Path(workflow.basedir).parent))

from labconfig import (
    SANITY_REFERENCE,
    ConfigError,
    as_json,
    attack_args,
    attack_options,
    baseline_options,
    clat_args,
    clat_inputs,
    clat_variant_options,
    corrupt_args,
    craft_transfer_args,
    external_kind,
    external_source,
    figure_names,
    import_args,
    note_options,
    params_hash,
    perturb_args,
    prepare_args,
    probe_args,
    report_options,
    resolve,
    run_options,
    system_noise_args,
    train_args,
)

try:
    # the input is never changed: `config` stays as Snakemake merged it, CFG is what rules read
    CFG = resolve(config)
except ConfigError as err:
    raise ValueError(str(err)) from None  # the listing of problems, not labconfig's traceback
for _note in CFG.notes:
    logger.warning(f"params.yaml: {_note}")

DATASETS = CFG.datasets
ARCHS = CFG.architectures
TECHNIQUES = CFG.techniques
CORRUPTIONS = CFG["corruptions"]["names"]
PERTURBATIONS = CFG["perturbations"]["names"]
ATTACKS = CFG.attacks
SEED = CFG["seed"]
THREADS = CFG["threads_per_job"]
RUNS = CFG.runs
CLAT_TECHNIQUES = CFG.clat_techniques
# Base techniques the DAG trains: those of the grid and the pretraining runs CLAT starts from.
TRAINED_TECHNIQUES = CFG.trained_techniques
# Per base technique, the epoch whose weights CLAT runs start from (the final epoch needs none);
# those techniques' training also writes pretrain_snapshot.safetensors (rule train_snapshot).
SNAPSHOTS = CFG.snapshots
SNAPSHOT_TECHNIQUES = sorted(SNAPSHOTS)
# Architectures the DAG trains, and external models (external_models:) it imports instead
# (import_model for safetensors weights, import_program for torch.export programs).
TRAINED_ARCHS = CFG.trained_architectures
EXTERNAL_ARCHS = CFG.external_architectures
EXTERNAL_PROGRAMS = [
    a for a in EXTERNAL_ARCHS if external_kind(CFG["external_models"][a]) == "program"
]
EXTERNAL_WEIGHTS = [a for a in EXTERNAL_ARCHS if a not in EXTERNAL_PROGRAMS]


def one_of(names):
    """A wildcard regex matching exactly these names (none: matches nothing)."""
    names = sorted(names, key=len, reverse=True)
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


wildcard_constraints:
    dataset=one_of(DATASETS),
    arch=one_of(ARCHS),
    technique=one_of(set(TECHNIQUES) | set(TRAINED_TECHNIQUES) | set(CFG.run_techniques)),
    corruption=one_of(CORRUPTIONS),
    perturbation=one_of(PERTURBATIONS),
    attack=one_of(ATTACKS),
    split="train|test",


def job_arg(builder, key, *wildcard_names):
    """A param of a rule: argument `key` of builder(CFG, *wildcards), a labconfig *_args function."""
    return lambda w: builder(CFG, *(w[name] for name in wildcard_names))[key]


def stage(module):
    """The stage script a rule runs; an input, so editing it reruns the rule's jobs."""
    return f"stages/{module}.py"


def model_files(w):
    """The trained model a evaluation job reads (an imported program: its program.pt2)."""
    model = "program.pt2" if w.arch in EXTERNAL_PROGRAMS else "model.safetensors"
    return {
        "weights": f"models/{w.dataset}/{w.arch}/{w.technique}/{model}",
        "card": f"models/{w.dataset}/{w.arch}/{w.technique}/card.json",
    }


def dataset_runs(dataset):
    """The runs (dataset/arch/technique) of one dataset."""
    return [run for run in RUNS if run.split("/")[0] == dataset]


# The report's figures (the figures stage draws exactly these and fails naming one the tables
# cannot support) and a hash of the resolved parameters for the report's footer.
FIGURE_NAMES = figure_names(CFG)
FIGURES = expand("reports/figures/{name}.png", name=FIGURE_NAMES)
PARAMS_HASH = params_hash(CFG)
