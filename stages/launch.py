"""Run one stage: ``python -m stages.launch NAME ARGS...`` does what
``python -m stages.NAME ARGS...`` does, through the run's warm stage server (stages/server.py)
when there is one.

Every rule's command starts with it. With a server (``ROBUSTLAB_STAGE_SERVER`` names its
socket, outside SLURM jobs) the stage runs in a child forked from the server, which imported
torch and the library once for the whole run; this process waits for the child, passes it the
signals it gets and exits with its status (or dies of its signal). Without one, or when the
server does not answer, it becomes ``python -m stages.NAME`` (exec). Imports the standard
library only, so that it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys

#: Environment variable naming the run's server socket (set by stages.server.start).
ADDRESS_VAR = "ROBUSTLAB_STAGE_SERVER"
#: Signals passed on to the job.
FORWARDED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
#: The standard streams handed to the job.
STREAMS = (0, 1, 2)
USAGE = "usage: python -m stages.launch STAGE [ARGS...]  (STAGE: a module of stages/, e.g. train)"


def _connect() -> socket.socket | None:
    address = os.environ.get(ADDRESS_VAR)
    if not address or os.environ.get("SLURM_JOB_ID"):  # a SLURM job runs inside its allocation
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.connect(address)
    except OSError:
        conn.close()
        return None
    return conn


def _open_streams() -> list[int]:
    streams = []
    for fd in STREAMS:
        try:
            os.fstat(fd)
        except OSError:
            continue
        streams.append(fd)
    return streams


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _run_direct(stage: str, args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", f"stages.{stage}", *args])


def _receive(conn: socket.socket) -> dict:
    data = conn.recv(65536)
    return json.loads(data) if data else {}


def _exit_like(status: int) -> None:
    """Exit with the child's status; a child killed by a signal kills this process alike."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        sys.exit(128 - status)
    sys.exit(status)


def main() -> None:
    if len(sys.argv) < 2 or not sys.argv[1].isidentifier():
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    stage, args = sys.argv[1], sys.argv[2:]
    conn = _connect()
    if conn is None:
        _run_direct(stage, args)
    streams = _open_streams()
    request = {
        "stage": stage,
        "args": args,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": _umask(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "streams": streams,
    }
    try:
        socket.send_fds(conn, [json.dumps(request).encode()], streams)
        started = _receive(conn)
    except OSError:
        started = {}
    if "pid" not in started:  # refused or gone: the same job in a process of its own
        conn.close()
        _run_direct(stage, args)
    pid = started["pid"]

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    try:
        ended = _receive(conn)
    except OSError:
        ended = {}
    if "status" not in ended:
        print(f"stages.launch: the stage server ended before stage {stage} did", file=sys.stderr)
        sys.exit(1)
    _exit_like(ended["status"])


if __name__ == "__main__":
    main()
