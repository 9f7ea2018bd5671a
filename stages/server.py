"""The warm stage server: every local job of a run forks from one process that imported torch.

A stage job spends about 2 s importing torch, pandas and the library before it computes
anything; a default run has over a hundred jobs and a test session over two hundred. For the
length of one local ``snakemake`` run (started by its ``onstart`` hook, workflow/rules/
common.smk) this server imports every stage once, listens on a Unix socket in a private
temporary folder, and runs each job that ``python -m stages.launch NAME ...`` hands it in a
forked child, with the job's arguments, working directory, environment, umask, niceness and
standard streams: what ``python -m stages.NAME ...`` would do, without the imports.

Why a fork server of our own: Snakemake starts every job as a new process, and no maintained
library keeps imported modules warm across independent command lines (multiprocessing's
forkserver serves Python callables of one parent, not jobs of a shell command line).

Guarantees:
- A job's outputs do not depend on the server: nothing runs in the server but imports (no torch
  operation, so no thread pool is inherited), and the child gets the job's environment. The
  BLAS and OpenMP thread counts, read once at import, are the run's ``threads_per_job``.
- Killing the job's ``stages.launch`` process kills its child (SIGTERM, SIGINT, SIGHUP and
  SIGQUIT are forwarded; after a SIGKILL the child sees its connection close and kills itself).
- The server ends with its run: stopped by the ``onsuccess``/``onerror`` hooks, within a second
  of its parent's death (it checks its parent every second; Linux's parent-death signal would
  fire when the *thread* that started it ends), and with SIGTERM; it then stops its running
  children.
- Only the user who started it can connect: the socket's folder is private and each connection's
  peer user is checked.
- Without a server (``ROBUSTLAB_WARM_START=0``, SLURM jobs, a dry run) ``stages.launch``
  execs ``python -m stages.NAME`` itself, the same job.
- The code is the code of the run's start: edits to robustlab or stages during a run reach the
  next run (cold jobs would pick them up at their own start).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from stages.launch import ADDRESS_VAR, FORWARDED, STREAMS

#: Set to 0 to run every job as its own ``python -m stages.NAME`` process.
SWITCH_VAR = "ROBUSTLAB_WARM_START"
#: The thread-count variables that BLAS and OpenMP read once, when they are loaded.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MESSAGE_BYTES = 1 << 20
STAGES_DIR = Path(__file__).resolve().parent
NOT_STAGES = {"common", "launch", "server"}


@dataclass
class Job:
    """A running child and the connection of the ``stages.launch`` process waiting for it."""

    pid: int
    conn: socket.socket


# --- the Snakefile's side -----------------------------------------------------------------


def wanted(environ: os._Environ | dict) -> bool:
    """Whether a run should start a server: ``ROBUSTLAB_WARM_START`` is not 0 and the kernel
    has process file descriptors (Linux 5.3), which the server waits on."""
    if environ.get(SWITCH_VAR, "1") == "0":
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def spawn(threads: int, cwd: Path, timeout: float = 10.0) -> tuple[subprocess.Popen, Path] | None:
    """Start a server; its process and socket, or None when it does not listen in ``timeout`` s.

    ``threads``: the jobs' BLAS and OpenMP threads; ``cwd``: the repository root.
    """
    folder = Path(tempfile.mkdtemp(prefix="robustlab-stages-"))  # mode 0700
    address = folder / "server.sock"
    env = dict(os.environ)
    env.pop(ADDRESS_VAR, None)
    for name in THREAD_VARS:
        env[name] = str(max(threads, 1))
    command = [sys.executable, "-m", "stages.server", "--socket", str(address)]
    proc = subprocess.Popen(
        [*command, "--parent", str(os.getpid())],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not address.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            terminate(proc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        time.sleep(0.02)
    return proc, address


def start(threads: int, cwd: Path, timeout: float = 10.0) -> subprocess.Popen | None:
    """:func:`spawn` a server for this process's jobs and point them at it (the environment
    variable ``ROBUSTLAB_STAGE_SERVER``); None, and the jobs start cold, if it does not listen."""
    started = spawn(threads, cwd, timeout)
    if started is None:
        return None
    os.environ[ADDRESS_VAR] = str(started[1])
    return started[0]


def stop(proc: subprocess.Popen | None) -> None:
    """Stop a server from :func:`start` and forget its address."""
    os.environ.pop(ADDRESS_VAR, None)
    terminate(proc)


def terminate(proc: subprocess.Popen | None) -> None:
    """End a server (SIGTERM: it stops its running jobs and removes its socket)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the server -----------------------------------------------------------------------------


def stage_names() -> list[str]:
    """The stage modules of this package (one per rule)."""
    names = [info.name for info in pkgutil.iter_modules([str(STAGES_DIR)])]
    return sorted(set(names) - NOT_STAGES)


def preload() -> None:
    """Import every stage (and so torch, pandas and the library); run nothing.

    A stage that fails to import is skipped: its jobs import it again in their child and fail
    there with the error, as they would on their own.
    """
    for name in stage_names():
        with contextlib.suppress(Exception):
            importlib.import_module(f"stages.{name}")


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _send(conn: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):
        conn.send(json.dumps(message).encode())


def _child(request: dict, fds: list[int], conn: socket.socket, mask: set) -> int:
    """In the forked child: become the job, run the stage, return its exit status.

    The forwarded signals are blocked until the interpreter's default handlers are back
    (``mask``: the signal mask before the fork); one that came meanwhile is delivered then.
    """
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for target, fd in zip(request["streams"], fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    with contextlib.suppress(OSError):  # the launcher's niceness (raising it needs privileges)
        os.setpriority(os.PRIO_PROCESS, 0, request["nice"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [str(STAGES_DIR / f"{request['stage']}.py"), *request["args"]]
    threading.Thread(target=_end_with_launcher, args=(conn,), daemon=True).start()
    try:
        # what `python -m stages.NAME` runs: every stage ends in `if __name__ == "__main__": main()`
        importlib.import_module(f"stages.{request['stage']}").main()
        return 0
    except SystemExit as end:
        if end.code is None:
            return 0
        if isinstance(end.code, int):
            return end.code
        print(end.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _flush()
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:  # noqa: BLE001 - printed like the interpreter would, status 1
        traceback.print_exc()
        return 1


def _end_with_launcher(conn: socket.socket) -> None:
    """The launcher never writes after its request: anything read means it is gone."""
    with contextlib.suppress(OSError):
        conn.recv(16)
    os.kill(os.getpid(), signal.SIGKILL)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class Server:
    """Accepts jobs on ``address`` and forks one child per job."""

    def __init__(self, address: Path, parent: int) -> None:
        self.address, self.parent = address, parent
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(address))
        self.listener.listen(128)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.jobs: dict[int, Job] = {}  # pidfd: job
        self.stages = set(stage_names())

    def serve(self) -> None:
        """Serve until the parent ends (or SIGTERM ends the server)."""
        while os.getppid() == self.parent:
            for key, _ in self.selector.select(timeout=1.0):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._reap(key.fd)

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            if _peer_uid(conn) != os.getuid():
                raise PermissionError("another user")
            conn.settimeout(10)  # a launcher sends its request at once; never wait on another
            data, fds, _, _ = socket.recv_fds(conn, MESSAGE_BYTES, len(STREAMS))
            conn.settimeout(None)
            request = json.loads(data)
            if request["stage"] not in self.stages or len(fds) != len(request["streams"]):
                raise ValueError(f"no stage named {request['stage']!r}")
        except (OSError, ValueError, KeyError, TypeError):  # the launcher runs the job itself
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        # a signal the launcher forwards at once must not reach the server's handlers in the child
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        pid = os.fork()
        if pid == 0:  # the job
            code = 1
            try:
                self.selector.close()
                self.listener.close()
                for fd, job in self.jobs.items():
                    os.close(fd)
                    job.conn.close()
                code = _child(request, fds, conn, mask)
            finally:
                _flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.jobs[pidfd] = Job(pid, conn)
        self.selector.register(pidfd, selectors.EVENT_READ)
        _send(conn, {"pid": pid})

    def _reap(self, pidfd: int) -> None:
        job = self.jobs.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(job.pid, 0)
        _send(job.conn, {"status": os.waitstatus_to_exitcode(status)})
        job.conn.close()

    def close(self) -> None:
        """Stop the running jobs (SIGTERM, then SIGKILL after 10 s) and remove the socket."""
        for job in self.jobs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for pidfd in list(self.jobs):
            job = self.jobs[pidfd]
            while time.monotonic() < deadline and os.waitpid(job.pid, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(job.pid, signal.SIGKILL)
                os.waitpid(job.pid, 0)
            job.conn.close()
        self.jobs.clear()
        self.listener.close()
        with contextlib.suppress(OSError):
            self.address.unlink()
            self.address.parent.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True, help="path of the socket to create")
    parser.add_argument("--parent", type=int, required=True, help="end when this process ends")
    args = parser.parse_args(argv)
    if os.getppid() != args.parent:  # the parent ended already
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = Server(args.socket, args.parent)  # listening: early jobs queue while it imports
    try:
        preload()
        server.serve()
    finally:
        server.close()


if __name__ == "__main__":
    main()
