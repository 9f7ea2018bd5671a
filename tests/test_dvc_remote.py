"""DVC remotes and experiments on the tiny grid, starting from the session's reference run.

The reference run (``tiny_reference``, tests/conftest.py) was pushed to a local-directory DVC
remote; its repository doubles as the git remote. A fresh clone pulls it and has nothing to
recompute; a technique parameter change reruns exactly that technique's jobs. A clone runs
experiments with `dvc exp run -S`, shares one through `dvc exp push`, and a second clone brings
it back with `dvc exp apply` + `dvc pull` and has nothing to recompute. Trained models come back
from Snakemake's output cache (shared with the reference run) when the training parameters
return to ones trained before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests import background
from tests.ops_helpers import Reference, clone, run, tiny_runs

pytestmark = pytest.mark.e2e

EXPERIMENT = "pgd-steps-5"
PGD_AT_WEIGHTS = "models/fashion_mnist/small_cnn/pgd_at/model.safetensors"


RUNS = tiny_runs()


@pytest.fixture(scope="module")
def reference(tiny_reference: Reference) -> Path:
    return tiny_reference.repo


def _files(repo: Path, folder: str) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(repo).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((repo / folder).rglob("*"))
        if p.is_file()
    }


def _output(proc) -> str:
    return proc.stdout + proc.stderr


@background.build("workspace", after=["tiny_reference"])
def _workspace(folder: Path, tiny_reference: Reference) -> dict:
    repo = clone(tiny_reference.repo, folder / "repo")
    run(["dvc", "pull"], repo)
    models = _files(repo, "models")
    experiment = run(
        ["dvc", "exp", "run", "-n", EXPERIMENT, "-S", "attacks.pgd_linf.steps=5"],
        repo,
        extra_env={"ROBUSTLAB_OUTPUT_CACHE": str(tiny_reference.output_cache)},
    )
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    return {
        "repo": repo,
        "models_before": models,
        "models_after": _files(repo, "models"),
        "log": _output(experiment),
        "shown": shown,
        "metrics": json.loads((repo / "reports/metrics.json").read_text()),
    }


@pytest.fixture(scope="module")
def workspace() -> dict:
    """A clone of the reference with its outputs pulled, then an evaluation-only experiment."""
    return background.result("workspace")


def _dry_run(repo: Path) -> str:
    proc = run(["snakemake", "-n", "--cores", "1"], repo)
    return proc.stdout + proc.stderr


def _planned_outputs(dry_run: str) -> set[str]:
    return set(re.findall(r"output: (.+)", dry_run))


PGD = "adversarial/pgd_linf.parquet"


@background.build("changed_clone", after=["tiny_reference"])
def _changed_clone(folder: Path, tiny_reference: Reference) -> dict:
    """A fresh clone that pulls, then reruns after a change of PGD-AT's steps."""
    repo = clone(tiny_reference.repo, folder / "clone")
    run(["dvc", "pull"], repo)
    seen = {"status": run(["dvc", "status"], repo).stdout, "dry_run": _dry_run(repo)}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["techniques"]["pgd_at"]["steps"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    seen["planned"] = _planned_outputs(_dry_run(repo))
    seen["before"] = {r: (repo / "results" / r / PGD).read_bytes() for r in RUNS}
    run(["dvc", "repro"], repo)
    seen["after"] = {r: (repo / "results" / r / PGD).read_bytes() for r in RUNS}
    seen["dry_run_after"] = _dry_run(repo)
    return seen


@pytest.fixture(scope="module")
def changed_clone() -> dict:
    return background.result("changed_clone")


def test_fresh_clone_pulls_and_reruns_only_the_changed_technique(changed_clone):
    assert "up to date" in changed_clone["status"]
    assert "Nothing to be done" in changed_clone["dry_run"]

    outputs = {p.strip() for line in changed_clone["planned"] for p in line.split(",")}
    per_run = {o for o in outputs if o.startswith(("models/", "results/fashion_mnist"))}
    assert per_run, "the change planned no job"
    # pgd_at's runs and the CLAT runs that start from them rerun; so does every target's
    # transfer evaluation (it reads the examples crafted on pgd_at's models); nothing else
    changed = {r for r in RUNS if r.split("/")[2] in ("pgd_at", "pgd_at+clat")}
    own = {o for o in per_run if not o.endswith("/transfer.parquet")}
    assert {"/".join(o.split("/")[1:4]) for o in own} == changed
    assert {o for o in per_run - own} == {f"results/{r}/transfer.parquet" for r in RUNS}
    assert {"results/metrics.parquet", "reports/index.html"} <= outputs
    assert not any(o.startswith("data/") for o in outputs)

    for r in RUNS:
        same = changed_clone["after"][r] == changed_clone["before"][r]
        assert same == (r not in changed), r
    assert "Nothing to be done" in changed_clone["dry_run_after"]


def _find_experiment(node, name: str):
    """The entry of ``dvc exp show --json`` output named ``name`` (its layout varies by version)."""
    if isinstance(node, dict):
        if node.get("name") == name and "data" in node:
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_experiment(child, name)
        if found is not None:
            return found
    return None


def _data(entry: dict, kind: str, path: str) -> dict:
    return entry["data"][kind][path]["data"]


def test_an_evaluation_experiment_retrains_nothing_and_is_listed_with_its_metrics(workspace):
    log = workspace["log"]
    assert "rule attack:" in log  # the changed attack reran...
    assert "rule train:" not in log  # ...and no model was trained or restored
    assert workspace["models_after"] == workspace["models_before"]
    entry = _find_experiment(workspace["shown"], EXPERIMENT)
    assert entry is not None, f"{EXPERIMENT} missing from dvc exp show"
    assert _data(entry, "params", "params.yaml")["attacks"]["pgd_linf"]["steps"] == 5
    assert _data(entry, "metrics", "reports/metrics.json") == workspace["metrics"]


SHARED = ("results/metrics.parquet", "reports/metrics.json", PGD_AT_WEIGHTS)


@background.build("experiment_back", after=["workspace", "tiny_reference"])
def _bring_back(folder: Path, workspace: dict, tiny_reference: Reference) -> dict:
    """The workspace's experiment pushed, then applied and pulled in a fresh clone."""
    repo = workspace["repo"]
    run(["dvc", "exp", "push", "origin", EXPERIMENT], repo)  # git refs + DVC objects
    fresh = clone(tiny_reference.repo, folder / "fresh")
    run(["dvc", "exp", "pull", "--no-cache", "origin", EXPERIMENT], fresh)  # only the git refs
    # apply writes the experiment's params.yaml and dvc.lock, then reports the outputs it could
    # not check out (not in this clone's cache yet); dvc pull fetches them
    applied = run(["dvc", "exp", "apply", EXPERIMENT], fresh, check=False)
    run(["dvc", "pull"], fresh)
    return {
        "fresh": fresh,
        "pushed": {name: (repo / name).read_bytes() for name in SHARED},
        "applied": applied,
        "status": run(["dvc", "status"], fresh).stdout,
        "dry_run": _output(run(["snakemake", "-n", "--cores", "1"], fresh)),
    }


@pytest.fixture(scope="module")
def experiment_back() -> dict:
    return background.result("experiment_back")


def test_an_experiment_comes_back_in_a_fresh_clone_without_recomputation(experiment_back):
    fresh, applied = experiment_back["fresh"], experiment_back["applied"]
    assert applied.returncode == 0 or "Checkout failed" in applied.stderr, _output(applied)
    params = yaml.safe_load((fresh / "params.yaml").read_text())
    assert params["attacks"]["pgd_linf"]["steps"] == 5
    assert "up to date" in experiment_back["status"]
    assert "Nothing to be done" in experiment_back["dry_run"]
    for name in SHARED:
        assert (fresh / name).read_bytes() == experiment_back["pushed"][name], name


@background.build("cache_round_trip", after=["experiment_back", "workspace", "tiny_reference"])
def _cache_round_trip(folder: Path, _back: dict, workspace: dict, reference: Reference) -> dict:
    """PGD-AT trained with other steps in the workspace, then asked for with the old ones.

    After ``experiment_back``, which pushes the experiment from the workspace this changes.
    """
    # what the DVC stage does: scripts/output-cache-dir's folder, --cache train train_snapshot clat
    repo, cache_env = workspace["repo"], {"ROBUSTLAB_OUTPUT_CACHE": str(reference.output_cache)}
    cache = run(["scripts/output-cache-dir"], repo, extra_env=cache_env).stdout.strip()
    stored = sorted(Path(cache).glob("*_weights.safetensors"))
    smk = ["env", f"SNAKEMAKE_OUTPUT_CACHE={cache}", "snakemake", "--cores", "2", "--nolock"]
    smk += ["--cache", "train", "train_snapshot", "clat"]
    changed = folder / "pgd_at_steps_3.yaml"
    changed.write_text(yaml.safe_dump({"techniques": {"pgd_at": {"steps": 3}}}))
    trained = run([*smk, "--configfile", str(changed), "--", PGD_AT_WEIGHTS], repo)
    weights_trained = (repo / PGD_AT_WEIGHTS).read_bytes()
    back = run([*smk, "--", PGD_AT_WEIGHTS], repo)  # params.yaml: the reference's steps again
    return {
        "repo": repo,
        "cache": Path(cache),
        "stored": stored,
        "trained": _output(trained),
        "weights_trained": weights_trained,
        "back": _output(back),
    }


@pytest.fixture(scope="module")
def cache_round_trip() -> dict:
    return background.result("cache_round_trip")


def test_models_of_earlier_training_parameters_come_from_the_output_cache(
    cache_round_trip, reference, tiny_reference
):
    done = cache_round_trip
    repo = done["repo"]
    assert done["cache"].parent == tiny_reference.output_cache
    assert len(done["stored"]) >= 2  # stored by the reference run
    assert f"Moving output file {PGD_AT_WEIGHTS} to cache" in done["trained"]
    assert done["weights_trained"] != (reference / PGD_AT_WEIGHTS).read_bytes()
    assert f"Symlinking output file {PGD_AT_WEIGHTS} from cache" in done["back"]
    train_log = (repo / "logs/train/fashion_mnist/small_cnn/pgd_at.log").read_text()
    assert "epoch" not in train_log  # the training stage did not run
    assert (repo / PGD_AT_WEIGHTS).read_bytes() == (reference / PGD_AT_WEIGHTS).read_bytes()
