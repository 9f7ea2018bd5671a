"""The warm stage server (stages/server.py) and its launcher (stages/launch.py): a job launched
through the server behaves as ``python -m stages.NAME`` would (output, exit status, working
directory), and killing the launcher kills the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages import server

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def warm() -> dict:
    """A running server; the environment that points launchers at it."""
    started = server.spawn(1, cwd=REPO)
    assert started is not None, "the server did not start listening"
    proc, address = started
    environ = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    environ.update({"PYTHONPATH": str(REPO), server.ADDRESS_VAR: str(address)})
    yield {"env": environ, "proc": proc}
    server.terminate(proc)


def _launch(args: list[str], env: dict, cwd: Path = REPO, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stages.launch", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def _direct(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != server.ADDRESS_VAR}
    environ["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", f"stages.{args[0]}", *args[1:]],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "args",
    [
        ["headline", "--help"],  # status 0, usage on stdout
        ["headline", "--metrics", "m.parquet"],  # argparse error: status 2
        ["headline", "--metrics", "missing.parquet", "--out", "h.json"],  # the stage's own error
        ["no_such_stage"],  # not a stage: the launcher runs python -m itself
    ],
)
def test_a_launched_job_prints_and_ends_as_python_m_would(warm, tmp_path, args):
    launched = _launch(args, warm["env"], cwd=tmp_path)
    direct = _direct(args, cwd=tmp_path)
    assert launched.returncode == direct.returncode
    assert launched.stdout == direct.stdout
    if direct.stderr.startswith("Traceback"):  # the frames above the stage's differ
        assert launched.stderr.startswith("Traceback")
        assert launched.stderr.splitlines()[-1] == direct.stderr.splitlines()[-1]
    else:
        assert launched.stderr == direct.stderr
    assert (launched.returncode == 0) == (args[-1] == "--help")


def test_a_run_starts_a_server_unless_warm_start_is_off():
    assert server.wanted({})
    assert server.wanted({server.SWITCH_VAR: "1"})
    assert not server.wanted({server.SWITCH_VAR: "0"})


def test_without_a_server_the_launcher_runs_the_stage_itself(tmp_path):
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    environ[server.ADDRESS_VAR] = str(tmp_path / "nobody-listens.sock")
    launched = _launch(["headline", "--help"], environ)
    assert launched.returncode == 0 and launched.stdout == _direct(["headline", "--help"]).stdout


def _blocked_job(warm: dict, tmp_path: Path, nice: int = 0) -> tuple[subprocess.Popen, int]:
    """A launched job that waits: its 150 kB error message fills a pipe nobody reads.

    Returns the launcher and the job's pid (a child of the server)."""
    before = _children(warm["proc"].pid)
    launcher = subprocess.Popen(
        ["nice", "-n", str(nice), sys.executable, "-m", "stages.launch", "headline"]
        + ["--metrics", "m", "--out", "o"]
        + ["x" * 50_000] * 3,
        cwd=tmp_path,
        env=warm["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (new := _children(warm["proc"].pid) - before):
        assert time.monotonic() < deadline, "the server did not fork the job"
        time.sleep(0.05)
    (child,) = new
    return launcher, child


def test_killing_the_launcher_kills_the_job(warm, tmp_path):
    launcher, child = _blocked_job(warm, tmp_path)
    assert not _gone(child, timeout=0.5)
    launcher.kill()  # SIGKILL: nothing forwarded, the child notices its connection close
    launcher.wait(timeout=30)
    assert _gone(child)
    launcher.stderr.close()


def test_a_job_runs_at_its_launchers_niceness(warm, tmp_path):
    launcher, child = _blocked_job(warm, tmp_path, nice=7)
    deadline, nice = time.monotonic() + 10, None
    while nice != 7 and time.monotonic() < deadline:  # the child sets it as it starts
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        nice = int(fields[16])  # field 19 of /proc/PID/stat
        time.sleep(0.02)
    assert nice == 7
    launcher.kill()
    launcher.wait(timeout=30)
    launcher.stderr.close()
    assert _gone(child)


def test_a_signal_to_the_launcher_reaches_the_job_and_ends_both(warm, tmp_path):
    launcher, child = _blocked_job(warm, tmp_path)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == -signal.SIGTERM  # dies of the job's signal
    assert _gone(child)
    launcher.stderr.close()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.15, 0.2, 0.3])
def test_a_signal_at_any_moment_of_the_start_ends_launcher_and_job(warm, tmp_path, delay):
    """SIGTERM while the launcher connects, while the server forks, while the child sets up."""
    before = _children(warm["proc"].pid)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "stages.launch", "headline", "--metrics", "m", "--out", "o"]
        + ["x" * 50_000] * 3,
        cwd=tmp_path,
        env=warm["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == -signal.SIGTERM
    launcher.stderr.close()
    deadline = time.monotonic() + 20
    while _children(warm["proc"].pid) - before:
        assert time.monotonic() < deadline, "a job outlived its launcher"
        time.sleep(0.05)


def test_stopping_the_server_stops_its_jobs_and_removes_its_socket(tmp_path):
    proc = server.start(1, cwd=REPO)
    assert proc is not None
    address = Path(os.environ[server.ADDRESS_VAR])  # what the jobs of this process inherit
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    launcher, child = _blocked_job({"proc": proc, "env": environ}, tmp_path)
    server.stop(proc)
    assert server.ADDRESS_VAR not in os.environ
    assert proc.returncode == 0
    assert _gone(child)
    launcher.stderr.close()  # unblocks the launcher's own message
    assert launcher.wait(timeout=30) != 0
    assert not address.parent.exists()


def _toy_table(path: Path) -> None:
    """72 8x8 grey images of three classes told apart by bright rows."""
    from robustlab.data.images import ImageSet, write_images

    rng = np.random.default_rng(0)
    labels = np.arange(72) % 3
    images = (rng.random((72, 8, 8, 1)) * 80).astype(np.uint8)
    images[labels == 0, :3] += 150
    images[labels == 1, 5:] += 150
    write_images(ImageSet(images, labels.astype(np.int16), np.arange(72), list("abc"), "x"), path)


def test_a_warm_training_job_writes_the_same_model_as_a_cold_one(warm, tmp_path):
    """PGD-AT on a toy set through the server and as its own process: identical weights."""
    table = tmp_path / "train.parquet"
    _toy_table(table)
    args = ["train", "--train", str(table), "--dataset", "toy", "--arch", "small_cnn"]
    args += ["--arch-config", json.dumps({"width": 4, "hidden": 8}), "--val-size", "12"]
    args += ["--technique", "pgd_at", "--technique-config", json.dumps({"eps": 0.1, "steps": 2})]
    args += ["--train-config", json.dumps({"epochs": 2, "batch_size": 20, "amp": "none"})]
    args += ["--seed", "0", "--threads", "1", "--no-progress"]
    cold_env = {k: v for k, v in warm["env"].items() if k != server.ADDRESS_VAR}
    for name, env in (("warm", warm["env"]), ("cold", cold_env)):
        done = _launch([*args, "--out-dir", str(tmp_path / name)], env)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "warm/model.safetensors").read_bytes() == (
        tmp_path / "cold/model.safetensors"
    ).read_bytes()
    histories = [pd.read_parquet(tmp_path / f"{n}/history.parquet") for n in ("warm", "cold")]
    pd.testing.assert_frame_equal(*(h.drop(columns="seconds") for h in histories))


def test_the_server_ends_when_the_process_that_started_it_is_killed(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from stages import server; "
        f"proc, _ = server.spawn(1, cwd=Path({str(REPO)!r})); print(proc.pid, flush=True); "
        "time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    server_pid = int(parent.stdout.readline())
    assert not _gone(server_pid, timeout=0.5)
    parent.kill()  # SIGKILL: no clean-up code runs in the parent
    parent.wait(timeout=30)
    assert _gone(server_pid, timeout=20)


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering a niceness needs root")
def test_a_job_of_a_niced_server_runs_at_its_launchers_lower_niceness(tmp_path):
    started: list = []

    def spawn_niced() -> None:  # Linux sets niceness per thread; the server inherits this one's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        started.append(server.spawn(1, cwd=REPO))

    thread = threading.Thread(target=spawn_niced)
    thread.start()
    thread.join()
    proc, address = started[0]
    environ = {**os.environ, "PYTHONPATH": str(REPO), server.ADDRESS_VAR: str(address)}
    try:
        launcher, child = _blocked_job({"proc": proc, "env": environ}, tmp_path, nice=0)
        deadline, nice = time.monotonic() + 10, None
        while nice != 0 and time.monotonic() < deadline:
            nice = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[16])
            time.sleep(0.02)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 10 and nice == 0
        launcher.kill()
        launcher.wait(timeout=30)
        launcher.stderr.close()
    finally:
        server.terminate(proc)
