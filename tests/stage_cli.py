"""Stage command lines for the tests, run as the pipeline's rules run them: ``python -m
stages.launch NAME ...`` through one warm stage server (stages/server.py) for the session,
started on first use and stopped when the session ends (tests/background.py)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from stages import server
from tests import background

REPO = Path(__file__).resolve().parents[1]
_lock = threading.Lock()
_address: list[str] = []  # the session's server socket, once started ("" if it did not start)


def stage_command(module: str) -> list[str]:
    """The command line that runs stage ``module`` (``train`` or ``stages.train``)."""
    return [sys.executable, "-m", "stages.launch", module.removeprefix("stages.")]


def stage_env() -> dict[str, str]:
    """This process's environment, pointing stage commands at the session's server."""
    env = {k: v for k, v in os.environ.items() if k != server.ADDRESS_VAR}
    address = _session_server()
    if address:
        env[server.ADDRESS_VAR] = address
    return env


def _session_server() -> str:
    with _lock:
        if not _address:
            started = server.spawn(1, cwd=REPO)
            if started is None:  # the stage commands start cold
                _address.append("")
            else:
                proc, address = started
                background.at_finish(lambda: server.terminate(proc))
                _address.append(str(address))
        return _address[0]
