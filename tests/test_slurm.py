"""The SLURM profiles: what each job asks the scheduler for, and a run on a real SLURM cluster.

profiles/slurm is checked by dry runs (GPU, memory and runtime per rule, groups of tiny jobs).
profiles/slurm-local reruns part of the tiny grid (tests/ops_helpers.py) through
`SMK_PROFILE=... dvc repro` on a single-node cluster that scripts/slurm-cluster starts from
Debian's packages (installed with apt-get when missing): a copy of the session's local reference
run without a trained model and a data table, so a training job, a data group job and the
evaluation and report jobs after them run on the cluster; its tables must equal the reference's.
Without root, packages or working daemons that test is skipped, saying why;
ROBUSTLAB_SKIP_SLURM=1 skips it too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import background
from tests.ops_helpers import (
    Reference,
    assert_same_tables,
    copy_run,
    make_repo,
    run,
    tiny_config,
)
from tests.pipeline_helpers import REPO

pytestmark = pytest.mark.e2e

SCRIPT = REPO / "scripts/slurm-cluster"
DAEMONS = ("munged", "slurmctld", "slurmd")


def _profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_workflow_profile_does_not_override_the_cluster_profiles():
    # Snakemake applies profiles/default on top of --profile, key by key: a key both define
    # must agree, or profiles/default would silently replace the cluster's value.
    default = _profile("default")
    for name in ("slurm", "slurm-local"):
        profile = _profile(name)
        clashes = {k: (profile[k], default[k]) for k in profile if k in default}
        assert {k: v for k, v in clashes.items() if v[0] != v[1]} == {}, name
        assert profile["executor"] == "slurm"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    # two `train` jobs: the TINY grid without CLAT (whose base trains as `train_snapshot`)
    config = tiny_config(techniques=["standard", "pgd_at"])
    repo = make_repo(tmp_path_factory.mktemp("slurm-dry") / "repo", config, git=False)
    proc = run(["snakemake", "-n", "--profile", "profiles/slurm"], repo)
    return proc.stdout + proc.stderr


def _jobs(dry: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run's listing."""
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", dry):
        rule = re.match(r"\s*(?:local)?rule (\w+):", block)
        resources = re.search(r"resources: (.+)", block)
        if rule and resources:
            pairs = (item.split("=", 1) for item in resources.group(1).split(", "))
            jobs.append((rule.group(1), dict(pairs)))
    return jobs


def test_slurm_profile_asks_for_a_gpu_memory_and_runtime_for_training(dry_run):
    jobs = _jobs(dry_run)
    train = [res for rule, res in jobs if rule == "train"]
    assert len(train) == 2
    for res in train:
        assert res["gpu"] == "1" and res["mem_mb"] == "8000" and res["runtime"] == "120"
    data = [res for rule, res in jobs if rule in ("prepare", "corrupt")]
    assert data and all("gpu" not in res and res["mem_mb"] == "4000" for res in data)


def test_slurm_profile_bundles_tiny_jobs_into_groups(dry_run):
    for group in ("data", "evaluate", "report"):
        assert f"Group job {group} (jobs in lexicogr. order)" in dry_run, group
    assert "Group job train" not in dry_run  # each training job is its own GPU job


@background.build("slurm_cluster")
def _start_cluster(state: Path) -> dict | background.Skipped:
    """A single-node SLURM cluster for the session, stopped when it ends."""
    if os.environ.get("ROBUSTLAB_SKIP_SLURM"):
        return background.Skipped("ROBUSTLAB_SKIP_SLURM is set")
    if os.geteuid() != 0:
        return background.Skipped(
            "a SLURM test cluster needs root (slurmd runs jobs as their submitter)"
        )
    started = subprocess.run(
        [str(SCRIPT), "start", str(state), str(3 * (os.cpu_count() or 1))],
        capture_output=True,
        text=True,
        timeout=900,
    )
    stop = [str(SCRIPT), "stop", str(state)]
    if started.returncode != 0:
        subprocess.run(stop, capture_output=True, timeout=120)
        reason = started.stderr.strip().splitlines()[-1] if started.stderr.strip() else "?"
        return background.Skipped(f"could not start a SLURM test cluster: {reason}")
    background.at_finish(lambda: subprocess.run(stop, capture_output=True, timeout=120))
    pids = {name: int((state / f"{name}.pid").read_text()) for name in DAEMONS}
    return {"state": state, "pids": pids, "conf": state / "slurm.conf"}


@background.build("slurm_rerun", after=["slurm_cluster", "tiny_reference"])
def _rerun_on_slurm(folder: Path, cluster: dict, tiny_reference: Reference) -> dict:
    """A copy of the reference run that lost one model and its inputs, rerun on the cluster."""
    repo = copy_run(tiny_reference.repo, folder / "repo")
    # Snakemake rebuilds a missing file only for a job that must run: the results table goes
    # too, so the aggregation reruns and with it the training of the lost model (a `train` job)
    # and that model's evaluation, which needs the lost system-noise table (a data group job)
    shutil.rmtree(repo / "models/fashion_mnist/small_cnn/standard")
    (repo / "data/noisy/fashion_mnist/system.parquet").unlink()
    (repo / "results/metrics.parquet").unlink()
    proc = run(
        ["dvc", "repro"],
        repo,
        timeout=1800,
        extra_env={"SMK_PROFILE": "profiles/slurm-local", "SLURM_CONF": str(cluster["conf"])},
    )
    return {"repo": repo, "log": proc.stdout + proc.stderr}


@pytest.fixture(scope="module")
def slurm_cluster() -> dict:
    return background.result("slurm_cluster")


@pytest.fixture(scope="module")
def slurm_rerun() -> dict:
    return background.result("slurm_rerun")


@pytest.fixture(scope="module")
def reference(tiny_reference: Reference) -> Path:
    return tiny_reference.repo


def test_the_tiny_grid_on_slurm_gives_the_local_tables(slurm_rerun, reference):
    repo, log = slurm_rerun["repo"], slurm_rerun["log"]
    assert "has been submitted with SLURM jobid" in log
    submitted = {p.name for p in (repo / "logs/slurm").iterdir()}
    assert "rule_train" in submitted and any(s.startswith("group_data") for s in submitted)
    assert_same_tables(repo, reference)
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_stopping_the_cluster_ends_exactly_its_daemons(slurm_cluster):
    cluster = slurm_cluster
    rerun = background.started().get("slurm_rerun")
    if rerun is not None:
        rerun.exception()  # wait: the rerun uses this cluster
    for pid in cluster["pids"].values():
        os.kill(pid, 0)  # running until now
    subprocess.run([str(SCRIPT), "stop", str(cluster["state"])], check=True, timeout=120)
    for name, pid in cluster["pids"].items():
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), name
        assert not (cluster["state"] / f"{name}.pid").exists()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
