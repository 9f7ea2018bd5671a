"""Failure drills on the tiny grid (tests/ops_helpers.py), run by `dvc repro` as `make run` does.

A copy of the session's finished reference run (``tiny_reference``, tests/conftest.py) loses its
PGD-AT model and its metrics table, so its next `dvc repro` retrains that model and reruns what
depends on it (CLAT, the attacks, transfer, the report), not the whole grid. That run is killed
with SIGKILL (its whole process group) while the model trains and again while an attack runs,
then rerun: its tables must equal the reference's. Other copies of the reference get a
truncated results table, which the next run must rebuild instead of reading, and two
concurrent `make run`. A fresh clone checks that a failing job leaves no partial outputs and
a log naming the cause. Each of these runs is built in the background (tests/background.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tests import background
from tests.ops_helpers import (
    Reference,
    assert_same_tables,
    clone,
    copy_run,
    group_alive,
    group_commands,
    kill_group,
    run,
    start,
    stray_temporaries,
    wait_until,
)
from tests.pipeline_helpers import REPO

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

TRAINED = ["fashion_mnist/small_cnn/standard", "fashion_mnist/small_cnn/pgd_at"]
RETRAINED = "fashion_mnist/small_cnn/pgd_at"  # the model the drilled copy lost


@pytest.fixture(scope="module")
def reference(tiny_reference: Reference) -> Path:
    return tiny_reference.repo


def _running(proc, module: str) -> bool:
    return any(f"-m stages.launch {module} " in c for c in group_commands(proc.pid))


def _stopped_with_a_checkpoint(proc, repo: Path) -> bool:
    """Whether a model trains and has written an epoch's checkpoint; if so the run's process
    group is left stopped (SIGSTOP), so that the kill comes before the training ends."""
    if not _running(proc, "train"):
        return False
    os.killpg(proc.pid, signal.SIGSTOP)  # an epoch of the tiny grid takes a fraction of a second
    if any(repo.glob("models/**/checkpoint.safetensors")):
        return True
    os.killpg(proc.pid, signal.SIGCONT)
    return False


@background.build("drilled", after=["tiny_reference"])
def _drill(base: Path, tiny_reference: Reference) -> dict:
    """A copy of the reference run without one model, killed while training, then while
    attacking, then rerun."""
    repo = copy_run(tiny_reference.repo, base / "repo")
    shutil.rmtree(repo / "models" / RETRAINED)  # its training (and all after it) must run again
    (repo / "results/metrics.parquet").unlink()
    facts: dict = {"repo": repo}

    proc = start(["dvc", "repro"], repo, base / "run1.log")
    # an epoch is done (its checkpoint written) and the job still trains
    wait_until(
        lambda: _stopped_with_a_checkpoint(proc, repo), proc, timeout=600, what="a checkpoint"
    )
    facts["checkpoints"] = sorted(p.parent.name for p in repo.glob("models/**/checkpoint.*"))
    kill_group(proc)
    facts["alive_after_first_kill"] = group_alive(proc.pid)
    facts["trained_before_first_kill"] = [
        r for r in TRAINED if (repo / "models" / r / "model.safetensors").exists()
    ]

    proc = start(["dvc", "repro"], repo, base / "run2.log")
    wait_until(lambda: _running(proc, "attack"), proc, timeout=600, what="an attack job")
    kill_group(proc)
    facts["alive_after_second_kill"] = group_alive(proc.pid)
    facts["metrics_after_second_kill"] = (repo / "results/metrics.parquet").exists()

    facts["rerun"] = run(["dvc", "repro"], repo)
    return facts


@pytest.fixture(scope="module")
def drilled() -> dict:
    """The drilled copy of the reference run (``_drill``) and what was seen on the way."""
    return background.result("drilled")


def test_runs_killed_during_training_and_attacks_end_as_an_uninterrupted_run(drilled, reference):
    repo = drilled["repo"]
    assert not drilled["alive_after_first_kill"] and not drilled["alive_after_second_kill"]
    assert drilled["checkpoints"], "the first kill came after training"
    assert len(drilled["trained_before_first_kill"]) < len(TRAINED)
    assert not drilled["metrics_after_second_kill"]
    assert_same_tables(repo, reference)
    for name in TRAINED:
        weights = f"models/{name}/model.safetensors"
        assert (repo / weights).read_bytes() == (reference / weights).read_bytes(), name
        assert not (repo / "models" / name / "checkpoint.safetensors").exists()
    assert stray_temporaries(repo) == []
    assert "up to date" in run(["dvc", "status"], repo).stdout


TRUNCATED = "results/fashion_mnist/small_cnn/pgd_at/adversarial/pgd_linf.parquet"


@background.build("truncated", after=["tiny_reference"])
def _truncate(folder: Path, tiny_reference: Reference) -> dict:
    """A copy of the reference run with a results table cut in half, then rerun."""
    repo = copy_run(tiny_reference.repo, folder / "repo")
    good = (repo / TRUNCATED).read_bytes()
    (repo / TRUNCATED).write_bytes(good[: len(good) // 2])
    status = run(["dvc", "status"], repo).stdout
    rerun = run(["dvc", "repro"], repo)
    return {"repo": repo, "good": good, "status": status, "rerun": rerun}


@pytest.fixture(scope="module")
def truncated() -> dict:
    return background.result("truncated")


def test_a_truncated_results_table_is_rebuilt_not_read(truncated, reference):
    repo, good = truncated["repo"], truncated["good"]
    assert "modified" in truncated["status"]
    assert f"check-outputs: {TRUNCATED}: not a readable Parquet file" in truncated["rerun"].stderr
    assert (repo / TRUNCATED).read_bytes() == good
    assert (repo / ".snakemake/broken" / TRUNCATED).stat().st_size == len(good) // 2
    assert_same_tables(repo, reference)
    assert "up to date" in run(["dvc", "status"], repo).stdout


@background.build("concurrent_runs", after=["tiny_reference"])
def _two_make_runs(folder: Path, tiny_reference: Reference) -> dict:
    """Two `make run` in a copy of the reference run, the second started while the first
    aggregates."""
    repo = copy_run(tiny_reference.repo, folder / "repo")
    venv = Path(sys.executable).parent.parent
    make = ["make", "--no-print-directory", "run", f"VENV={venv}", "STAMP="]
    # make the first run do some work: the aggregate table and everything after it
    (repo / "results/metrics.parquet").unlink()
    first = start(make, repo, folder / "first.log")
    wait_until(lambda: _running(first, "aggregate"), first, timeout=300, what="the aggregate job")
    second = start(make, repo, folder / "second.log")
    codes = (first.wait(timeout=600), second.wait(timeout=600))
    logs = ((folder / "first.log").read_text(), (folder / "second.log").read_text())
    return {"repo": repo, "codes": codes, "logs": logs}


@pytest.fixture(scope="module")
def concurrent_runs() -> dict:
    return background.result("concurrent_runs")


def test_two_concurrent_make_runs_do_not_corrupt_each_other(concurrent_runs, reference):
    first_log, second_log = concurrent_runs["logs"]
    assert concurrent_runs["codes"][0] == 0, first_log[-3000:]
    assert concurrent_runs["codes"][1] == 0, second_log[-3000:]
    assert "another 'make run' is running in this checkout; waiting" in second_log
    assert "Stage 'benchmark' didn't change, skipping" in second_log  # it found the work done
    assert "Running stage 'benchmark'" in first_log
    assert_same_tables(concurrent_runs["repo"], reference)


@background.build("failing_job", after=["tiny_reference"])
def _fail_a_job(folder: Path, tiny_reference: Reference) -> dict:
    """A clone whose params.yaml has an option the architecture does not know, run."""
    repo = clone(tiny_reference.repo, folder / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["architectures"]["small_cnn"]["widht"] = 8  # a typo the schema cannot know about
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {"repo": repo, "run": run(["dvc", "repro"], repo, check=False)}


@pytest.fixture(scope="module")
def failing_job() -> dict:
    return background.result("failing_job")


def test_a_failing_job_leaves_no_partial_outputs_and_its_log_names_the_cause(
    failing_job, reference
):
    repo, failed = failing_job["repo"], failing_job["run"]
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    # whichever small_cnn training job starts first fails and stops the run
    named = re.search(r"logs/train/fashion_mnist/small_cnn/[\w+.-]+\.log", output)
    assert "Error in rule train" in output and named is not None, output[-3000:]
    log = named.group(0)
    assert "bad option" in (repo / log).read_text() and "widht" in (repo / log).read_text()
    for name in TRAINED:
        for item in ("model.safetensors", "history.parquet", "card.json"):
            assert not (repo / "models" / name / item).exists(), f"{name}/{item}"
    assert not (repo / "results").exists() or not any((repo / "results").rglob("*.parquet"))
    assert stray_temporaries(repo) == []
    assert (repo / "data/prepared/fashion_mnist/train.parquet").exists()  # upstream work is kept


def _check_outputs(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/check-outputs"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )


def test_check_outputs_moves_exactly_the_damaged_files_aside(tmp_path):
    from safetensors.torch import save_file

    results = tmp_path / "results/run"
    results.mkdir(parents=True)
    pq.write_table(pa.table({"x": list(range(100))}), results / "good.parquet")
    full = (results / "good.parquet").read_bytes()
    (results / "cut.parquet").write_bytes(full[:-10])
    save_file({"w": torch.arange(12.0)}, str(results / "good.safetensors"))
    weights = (results / "good.safetensors").read_bytes()
    (results / "cut.safetensors").write_bytes(weights[:-4])
    (results / "good.json").write_text('{"a": 1}')
    (results / "cut.json").write_text('{"a": ')
    (results / ".good.parquet.abc123.tmp").write_bytes(b"half")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "HASH_weights.safetensors").write_bytes(weights[:20])
    (results / "linked.safetensors").symlink_to(cache / "HASH_weights.safetensors")

    listed = _check_outputs(tmp_path, "--dry-run")
    assert listed.stdout == ""  # a dry run moves and lists nothing
    assert (results / "cut.parquet").exists() and (results / ".good.parquet.abc123.tmp").exists()

    done = _check_outputs(tmp_path)
    damaged = ("cut.json", "cut.parquet", "cut.safetensors", "linked.safetensors")
    assert sorted(done.stdout.split()) == [f"results/run/{n}" for n in damaged]
    for name in ("cut.json", "cut.parquet", "cut.safetensors"):
        assert (tmp_path / ".snakemake/broken/results/run" / name).exists()
    assert (tmp_path / ".snakemake/broken/output-cache/HASH_weights.safetensors").exists()
    assert not (cache / "HASH_weights.safetensors").exists()  # the damaged cache entry too
    kept = sorted(p.name for p in results.iterdir())
    assert kept == ["good.json", "good.parquet", "good.safetensors"]
    assert "temporary file of a killed job; removed" in done.stderr
    assert _check_outputs(tmp_path).stdout == ""  # nothing left to repair
