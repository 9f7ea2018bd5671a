"""Helpers of the operations tests (failure drills, DVC remote, SLURM): grids, processes, tables."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from tests.background import processes
from tests.pipeline_helpers import REPO, copy_repo, env, git_init, merged_config
from workflow.labconfig import resolve

# The grid of the drills, DVC, SLURM and executor-agreement tests: the smoke preset cut to one
# architecture, its three techniques, two attacks, one corruption and one perturbation on 300
# training images. Every rule of the DAG still runs (training, the pretraining snapshot and CLAT
# fine-tuning, attacks, transfer, natural, stability and system noise, aggregation, report), in a
# fraction of the smoke preset's time.
TINY_TECHNIQUES = ["standard", "pgd_at", "pgd_at+clat"]
TINY = {
    "grid": {
        "datasets": ["fashion_mnist"],
        "architectures": ["small_cnn"],
        "techniques": TINY_TECHNIQUES,
    },
    "datasets": {"fashion_mnist": {"train_size": 300, "test_size": 100, "val_size": 50}},
    "train": {"epochs": 3, "batch_size": 50, "val_pgd_size": 50},
    "corruptions": {"names": ["gaussian_noise"]},
    "perturbations": {"names": ["gaussian_noise"]},
    "baseline": {"arch": "small_cnn", "technique": "standard"},
}
# Replaced, not merged: the two attacks transfer needs, cheap ones.
TINY_ATTACKS = {
    "fgsm": {},
    "pgd_linf": {"steps": 3, "step_size": 0.5, "random_start": True, "restarts": 1},
}


def smoke_config() -> dict:
    """params.yaml with presets/smoke.yaml applied."""
    return merged_config(REPO / "params.yaml", REPO / "presets/smoke.yaml")


def tiny_config(techniques: list[str] | None = None) -> dict:
    """The smoke configuration cut down to the TINY grid (its ``techniques`` when given)."""
    config = smoke_config()
    for key, value in TINY.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = _merge(config[key], value)
        else:
            config[key] = value
    config["attacks"] = TINY_ATTACKS
    if techniques is not None:
        config["grid"]["techniques"] = list(techniques)
    return config


def tiny_runs() -> list[str]:
    """The runs of the TINY grid, ``dataset/arch/technique``."""
    return resolve(tiny_config()).runs


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def make_repo(dest: Path, config: dict, git: bool = True) -> Path:
    """A copy of the repository whose params.yaml is ``config``; a git commit when ``git``."""
    repo = copy_repo(dest)
    (repo / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if git:
        git_init(repo)
    return repo


def start(cmd: list[str], cwd: Path, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), output to ``log``."""
    environ = env()
    environ.update(extra_env or {})
    handle = log.open("w")
    return subprocess.Popen(
        cmd, cwd=cwd, env=environ, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group of ``proc`` and wait until its leader is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def group_alive(pgid: int, grace: float = 10.0) -> bool:
    """Whether a process of group ``pgid`` still runs ``grace`` seconds on (zombies do not)."""
    deadline = time.monotonic() + grace
    while True:
        states = [state for state, _ in _group_processes(pgid)]
        if all(state == "Z" for state in states) or time.monotonic() > deadline:
            return any(state != "Z" for state in states)
        time.sleep(0.2)


def _group_processes(pgid: int) -> list[tuple[str, str]]:
    """(state, command line) of the processes of group ``pgid`` (Linux /proc)."""
    found = []
    for pid, state, _, group in processes():
        if group == pgid:
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # ended meanwhile
                continue
            found.append((state, raw.replace(b"\0", b" ").decode(errors="replace")))
    return found


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str):
    """Poll ``condition`` every 0.2 s; fail if ``proc`` ends first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the pipeline ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def tables(repo: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet table of a run, keyed by path; wall-clock columns dropped."""
    out = {}
    for folder in ("data", "models", "results"):
        for path in sorted((repo / folder).glob("**/*.parquet")):
            frame = pd.read_parquet(path)
            if path.name == "history.parquet":
                frame = frame.drop(columns=["seconds"], errors="ignore")
            out[path.relative_to(repo).as_posix()] = frame
    return out


def assert_same_tables(got: Path, expected: Path) -> None:
    """Same set of tables with identical contents; results/metrics.parquet byte for byte."""
    a, b = tables(got), tables(expected)
    assert sorted(a) == sorted(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
    metrics = "results/metrics.parquet"
    assert (got / metrics).read_bytes() == (expected / metrics).read_bytes()


def stray_temporaries(repo: Path) -> list[str]:
    """Temporary files of atomic writes left in the artifact folders."""
    return sorted(
        p.relative_to(repo).as_posix()
        for folder in ("data", "models", "results", "reports")
        for p in (repo / folder).glob("**/.*.tmp")
    )


def group_commands(pgid: int) -> list[str]:
    """Command lines of the live (not zombie) processes of process group ``pgid``."""
    return [command for state, command in _group_processes(pgid) if state != "Z"]


@dataclass(frozen=True)
class Reference:
    """A finished, uninterrupted `dvc repro` of a grid in a git + DVC repository; read-only.

    ``remote``: the local DVC remote its outputs were pushed to (None when not pushed);
    ``output_cache``: the ROBUSTLAB_OUTPUT_CACHE folder its trained models were stored in.
    """

    repo: Path
    remote: Path | None
    output_cache: Path


def build_reference(base: Path, config: dict, push: bool = True) -> Reference:
    """Run ``config`` by `dvc repro` in a new git + DVC copy of the repository under ``base``.

    With ``push`` the outputs go to a local DVC remote (the repository's default remote) and the
    results are committed, so clones can pull them. Trained models are stored in an output cache
    outside the repository, so experiments in clones can reuse them.
    """
    repo = make_repo(base / "repo", config)
    remote = base / "dvc-remote" if push else None
    if remote is not None:
        run(["dvc", "remote", "add", "-d", "store", str(remote)], repo)
        run(["git", "commit", "-qam", "DVC remote"], repo)
    cache = base / "output-cache"
    run(["dvc", "repro"], repo, extra_env={"ROBUSTLAB_OUTPUT_CACHE": str(cache)})
    if remote is not None:
        run(["dvc", "push"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    return Reference(repo=repo, remote=remote, output_cache=cache)


def copy_run(origin: Path, dest: Path) -> Path:
    """A full copy of a finished run's repository: git, DVC cache, Snakemake metadata, outputs.

    Mutating tests start from it instead of recomputing the run; ``cp -a`` keeps timestamps and
    links, so Snakemake and DVC find every output as up to date as in ``origin``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(origin), str(dest)], check=True)
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900, extra_env=None):
    """pipeline_helpers.run with extra environment variables."""
    environ = env()
    environ.update(extra_env or {})
    proc = subprocess.run(
        cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def clone(origin: Path, dest: Path) -> Path:
    """A git clone of ``origin`` (no pipeline outputs: those are DVC's)."""
    run(["git", "clone", "-q", str(origin), str(dest)], origin.parent)
    return dest
