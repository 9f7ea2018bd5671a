"""Helpers for tests that run the pipeline in a temporary copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    """The environment of a pipeline run: this interpreter's tools first on PATH."""
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.setdefault("GIT_AUTHOR_NAME", "robustlab tests")
    out.setdefault("GIT_AUTHOR_EMAIL", "tests@robustlab.invalid")
    out.setdefault("GIT_COMMITTER_NAME", "robustlab tests")
    out.setdefault("GIT_COMMITTER_EMAIL", "tests@robustlab.invalid")
    out["DVC_NO_ANALYTICS"] = "1"
    return out


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600):
    """Run a command, returning the completed process; on failure show its output."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def copy_repo(dest: Path) -> Path:
    """Copy the repository's tracked and untracked-but-not-ignored files into ``dest``."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def merged_config(*paths: Path) -> dict:
    """Deep-merge YAML files the way Snakemake merges --configfile over configfile."""
    from workflow.labconfig import load_config

    return load_config(*paths)


def git_init(repo: Path) -> None:
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "initial"], repo)
