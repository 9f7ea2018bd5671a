"""The workflow layer: schema validation, lint, dry runs of params.yaml and every preset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from robustlab.models import ARCHITECTURES
from robustlab.noise.adversarial import ATTACKS
from robustlab.noise.natural import corruption_names
from robustlab.noise.stability import perturbation_names
from robustlab.training.techniques import TECHNIQUES
from tests.pipeline_helpers import REPO, copy_repo, run

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())
PRESETS = sorted((REPO / "presets").glob("*.yaml"))


def test_schema_names_mirror_the_registries():
    defs = SCHEMA["$defs"]
    assert sorted(defs["architecture_name"]["enum"]) == ARCHITECTURES.names()
    bases = TECHNIQUES.names()
    assert sorted(defs["base_technique_name"]["enum"]) == bases
    assert sorted(defs["technique_name"]["enum"]) == sorted(bases + [f"{b}+clat" for b in bases])
    assert sorted(defs["attack_name"]["enum"]) == ATTACKS.names()
    assert sorted(defs["corruption_name"]["enum"]) == sorted(corruption_names())
    assert sorted(defs["perturbation_name"]["enum"]) == sorted(perturbation_names())


def test_workflow_attack_norms_mirror_the_library():
    """common.smk's table of attack norms (read without importing torch) matches the classes."""
    text = (REPO / "workflow/rules/common.smk").read_text()
    table = text[text.index("ATTACK_NORMS = {") : text.index("}", text.index("ATTACK_NORMS = {"))]
    norms = dict(re.findall(r'"(\w+)": "(\w+)"', table))
    for name in ATTACKS.names():
        attack = ATTACKS.get(name)()
        if name in ("autoattack", "square"):
            assert name not in norms  # their norm is a parameter
            continue
        assert norms[name] == attack.norm, name


def _jobs(dry_run_output: str) -> dict[str, int]:
    """Job counts per rule from the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    in_table = False
    for line in dry_run_output.splitlines():
        if line.startswith("job") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip() == "" and counts:
                break
    return counts


@pytest.mark.parametrize("preset", [None, *PRESETS], ids=lambda p: p.name if p else "params.yaml")
def test_dry_run_plans_every_job_of_the_grid(preset, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    args = ["snakemake", "-n", "--cores", "1"]
    config = yaml.safe_load((repo / "params.yaml").read_text())
    if preset is not None:
        args += ["--configfile", f"presets/{preset.name}"]
        override = yaml.safe_load(preset.read_text())
        config["grid"] = {**config["grid"], **override.get("grid", {})}
        for key in ("corruptions", "attacks", "perturbations"):
            if key in override:
                config[key] = {**config[key], **override[key]}
    proc = run(args, repo)
    grid = config["grid"]
    runs = len(grid["datasets"]) * len(grid["architectures"]) * len(grid["techniques"])
    jobs = _jobs(proc.stdout + proc.stderr)
    clat = [t for t in grid["techniques"] if t.endswith("+clat")]
    per_technique = len(grid["datasets"]) * len(grid["architectures"])
    assert jobs.get("clat", 0) == per_technique * len(clat)
    # X+clat starts from X's run: X is trained once, whether or not the grid lists it
    trained = {t.removesuffix("+clat") for t in grid["techniques"]}
    assert jobs.get("train", 0) + jobs.get("train_snapshot", 0) == per_technique * len(trained)
    attacks = [name for name, params in config["attacks"].items() if params is not None]
    assert jobs["attack"] == runs * len(attacks)
    per_run = ["evaluate", "craft_transfer", "transfer", "probe"]
    assert {rule: jobs[rule] for rule in per_run} == dict.fromkeys(per_run, runs)
    assert jobs["prepare"] == 2 * len(grid["datasets"])
    assert jobs["corrupt"] == len(grid["datasets"]) * len(config["corruptions"]["names"])
    assert jobs["perturb"] == len(grid["datasets"]) * len(config["perturbations"]["names"])
    assert jobs["system_noise"] == len(grid["datasets"])
    assert jobs["aggregate"] == jobs["sanity"] == jobs["figures"] == jobs["report"] == 1


def test_lint_finds_nothing_but_the_documented_environment_notes(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    proc = run(["snakemake", "--lint"], repo, check=False)
    text = proc.stdout + proc.stderr
    # The one lint we accept, documented in docs/development.md: rules run in the project's .venv,
    # not in per-rule conda environments or containers.
    findings = re.findall(r"^\s+\* (.+?):?$", text, flags=re.MULTILINE)
    assert findings, f"no lint output to check:\n{text}"
    others = [f for f in findings if "conda environment or container" not in f]
    assert others == [], text


BAD_PARAMS = [
    (
        "unknown architecture",
        ["grid", "architectures"],
        ["small_cnn", "resnet_9000"],
        ["grid.architectures.1", "resnet_9000", "preact_resnet18"],
    ),
    (
        "unknown technique",
        ["grid", "techniques"],
        ["standard", "magic_at"],
        ["grid.techniques.1", "magic_at", "pgd_at"],
    ),
    (
        "unknown attack",
        ["attacks"],
        {"fgsm": {}, "deepfool": {}},
        ["attacks", "deepfool", "pgd_linf"],
    ),
    (
        "unknown corruption",
        ["corruptions", "names"],
        ["gaussian_noise", "fog_of_war"],
        ["corruptions.names.1", "fog_of_war", "defocus_blur"],
    ),
    (
        "negative eps",
        ["datasets", "fashion_mnist", "eps"],
        [-0.1, 0.05],
        ["datasets.fashion_mnist.eps.0", "-0.1", "minimum"],
    ),
    (
        "eps above one",
        ["datasets", "fashion_mnist", "eps"],
        [0.05, 8.0],
        ["datasets.fashion_mnist.eps.1", "8.0", "maximum"],
    ),
    ("wrong type", ["train", "epochs"], "five", ["train.epochs", "'five'", "integer"]),
    ("unknown key", ["train", "epochz"], 3, ["train", "epochz", "allowed keys"]),
    (
        "L2 budgets for fewer levels",
        ["datasets", "fashion_mnist", "eps_l2"],
        [0.5, 1.0],
        ["datasets.fashion_mnist.eps_l2", "2 values but eps has 3"],
    ),
    (
        "level outside the eps list",
        ["attacks", "fgsm"],
        {"levels": [1, 4]},
        ["attacks.fgsm.levels", "outside 1..3"],
    ),
    (
        "transfer attack not configured",
        ["transfer", "attacks"],
        ["fgsm", "mim"],
        ["transfer.attacks.1", "'mim' is not configured under attacks:"],
    ),
    (
        "missing dataset",
        ["grid", "datasets"],
        ["fashion_mnist", "svhn"],
        ["grid.datasets.1", "svhn", "cifar10"],
    ),
]


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_bad_params_fail_before_any_job_naming_the_key(case, tmp_path):
    _, key_path, value, expected = case
    repo = copy_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    node = params
    for key in key_path[:-1]:
        node = node[key]
    node[key_path[-1]] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["snakemake", "-n", "--cores", "1"], repo, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text[-3000:]}"
    assert not (repo / "data/prepared").exists() and not (repo / "models").exists()


def test_l2_attack_without_l2_budgets_is_named(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["attacks"]["pgd_l2"] = {"steps": 5}
    del params["datasets"]["fashion_mnist"]["eps_l2"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["snakemake", "-n", "--cores", "1"], repo, check=False)
    assert proc.returncode != 0
    assert "datasets.fashion_mnist.eps_l2: missing; attacks.pgd_l2 is an l2 attack" in (
        proc.stdout + proc.stderr
    )


def test_dataset_in_grid_without_its_entry_is_named(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["grid"]["datasets"] = ["fashion_mnist", "cifar10"]
    del params["datasets"]["cifar10"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["snakemake", "-n", "--cores", "1"], repo, check=False)
    assert proc.returncode != 0
    assert "grid.datasets: 'cifar10' has no entry under datasets:" in proc.stdout + proc.stderr


def test_missing_data_file_fails_with_instructions(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    proc = run(
        [
            "python",
            "-m",
            "stages.prepare",
            "--dataset",
            "fashion_mnist",
            "--split",
            "test",
            "--size",
            "100",
            "--seed",
            "0",
            "--source-dir",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out.parquet"),
        ],
        repo,
        check=False,
    )
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr and "dataset-fashion-mnist" in proc.stderr
    assert not Path(tmp_path / "out.parquet").exists()


def test_sweep_variants_join_the_grid_reproducibly(tmp_path):
    from robustlab.models.sweep import sample_architectures

    repo = copy_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    space = {
        "base": "wrn",
        "depths": [[1, 2], [1], [1]],
        "widths": [[1, 2], [1], [1]],
        "image_size": [20, 28],
    }
    params["sweeps"] = {"tiny_wrn": {"space": space, "count": 3, "seed": 5}}
    params["architectures"]["my_wrn"] = {"arch": "wrn", "depth": 10, "widen_factor": 1}
    params["grid"]["architectures"] = ["my_wrn"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["snakemake", "-n", "--cores", "1", "-p"], repo)
    text = proc.stdout + proc.stderr
    variants = sample_architectures(space, 3, seed=5)
    for name in [*variants, "my_wrn"]:
        assert f"models/fashion_mnist/{name}/standard/model.safetensors" in text
    # the registered base is built, the grid entry names the run
    assert "--arch wrn --arch-name my_wrn" in text
    runs = len(variants) + 1
    trained = {t.removesuffix("+clat") for t in params["grid"]["techniques"]}
    jobs = _jobs(text)
    assert jobs.get("train", 0) + jobs.get("train_snapshot", 0) == runs * len(trained)
