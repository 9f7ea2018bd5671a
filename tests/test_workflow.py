"""The workflow end to end: dry runs of params.yaml and every preset, lint, shell quoting.

Validation and resolution of params.yaml are tested in-process in tests/test_config.py; the few
dry runs here check that Snakemake runs them before any job and that arguments reach the
commands intact.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.pipeline_helpers import REPO, copy_repo, run
from workflow.labconfig import load_config, resolve

PRESETS = sorted((REPO / "presets").glob("*.yaml"))


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
    # named variants: which runs are CLAT and which runs they start from, as resolved
    resolved = resolve(load_config(repo / "params.yaml", *([preset] if preset else [])))
    clat = resolved.clat_techniques
    per_technique = len(grid["datasets"]) * len(grid["architectures"])
    assert jobs.get("clat", 0) == per_technique * len(clat)
    # X+clat starts from X's run: X is trained once, whether or not the grid lists it
    trained = resolved.trained_techniques
    assert jobs.get("train", 0) + jobs.get("train_snapshot", 0) == per_technique * len(trained)
    attacks = [name for name, params in config["attacks"].items() if params is not None]
    assert jobs["attack"] == runs * len(attacks)
    per_run = ["evaluate", "craft_transfer", "transfer", "probe"]
    assert {rule: jobs[rule] for rule in per_run} == dict.fromkeys(per_run, runs)
    assert jobs["prepare"] == 2 * len(grid["datasets"])
    assert jobs.get("corrupt", 0) == len(grid["datasets"]) * len(config["corruptions"]["names"])
    assert jobs.get("perturb", 0) == len(grid["datasets"]) * len(config["perturbations"]["names"])
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


def _set(params: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        params = params[key]
    params[last] = value


def test_bad_params_fail_before_any_job_naming_the_key(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _set(params, "grid.architectures", ["small_cnn", "resnet_9000"])
    _set(params, "datasets.fashion_mnist.val_size", 3000)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["snakemake", "-n", "--cores", "1"], repo, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    for fragment in [
        "grid.architectures.1: 'resnet_9000' is not allowed; allowed values: deit_small",
        "datasets.fashion_mnist.val_size: 3000 must be smaller than the training subset (3000",
    ]:
        assert fragment in text, f"{fragment!r} missing from:\n{text[-3000:]}"
    assert "Job stats" not in text
    assert not (repo / "data/prepared").exists() and not (repo / "models").exists()


def _commands(text: str, stage: str) -> list[list[str]]:
    """The argument lists of the printed shell commands (snakemake -p) running stage ``stage``."""
    lines = re.findall(r"^Shell command: (.*)$", text, flags=re.MULTILINE)
    return [shlex.split(line) for line in lines if f"-m stages.launch {stage} " in line]


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_mixed_grid_budgets_and_quoted_options_reach_the_commands(tmp_path):
    """A Fashion-MNIST + CIFAR-10 grid trains each at its own largest eps; strings with quotes
    and shell metacharacters arrive as one argument each."""
    repo = copy_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    tricky = 'it\'s "odd"; $(echo no) `x` & y'
    _set(params, "grid.datasets", ["fashion_mnist", "cifar10"])
    _set(params, "grid.architectures", ["wrn_10_2"])
    _set(params, "datasets.cifar10.source_dir", f"/data/{tricky}")
    _set(params, "architectures.wrn_10_2", {"note": tricky})
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["snakemake", "-n", "-p", "--cores", "1"], repo)
    text = proc.stdout + proc.stderr
    budgets = {}
    for argv in _commands(text, "train") + _commands(text, "clat"):
        dataset = _option(argv, "--dataset")
        config = _option(
            argv, "--technique-config" if "--technique-config" in argv else "--clat-config"
        )
        train = json.loads(_option(argv, "--train-config"))
        budgets.setdefault(dataset, set()).add(
            (json.loads(config).get("eps"), train["val_pgd_eps"])
        )
        if "--arch-config" in argv:
            assert json.loads(_option(argv, "--arch-config")) == {"note": tricky}
    # standard has no eps; pgd_at and pgd_at+clat train at the dataset's largest eps
    assert budgets == {
        "fashion_mnist": {(None, 0.1), (0.1, 0.1)},
        "cifar10": {(None, 0.03137255), (0.03137255, 0.03137255)},
    }
    prepares = _commands(text, "prepare")
    sources = {_option(a, "--dataset"): a for a in prepares if "--source-dir" in a}
    assert _option(sources["cifar10"], "--source-dir") == f"/data/{tricky}"
    assert "fashion_mnist" not in sources


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
