"""The end-to-end runs of the test session, built in background threads from its start.

An end-to-end run (a `dvc repro` of a grid, a failure drill, a rerun on a SLURM test cluster)
spends most of its time in subprocesses, waiting on a job's start-up, on a dependency or on the
scheduler, and leaves one of CI's two cores idle. Registered here with :func:`build`, each run
starts as soon as the tests are collected (tests/conftest.py) and the runs it needs are done, in
a thread of its own, while the unit tests run in the main thread; the end-to-end tests, ordered
last, read the finished runs through :func:`result`. A run that no collected test needs does not
start; one asked for before it started (a test run on its own) starts then.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Build:
    """A run: ``make(folder, *results of after)`` in a fresh temporary folder."""

    name: str
    make: Callable[..., Any]
    after: tuple[str, ...]
    nice: int


@dataclass(frozen=True)
class Skipped:
    """The result of a run that cannot run here; :func:`result` skips the asking test."""

    reason: str


#: Niceness of the runs' threads, inherited by their subprocesses (Linux sets it per thread):
#: the unit tests in the main thread keep a core while runs wait for theirs, so the last runs
#: and the last unit tests end together instead of the unit tests running alone at the end.
NICE = 10


_builds: dict[str, Build] = {}
_started: dict[str, Future] = {}
_lock = threading.RLock()
_folders: Callable[[str], Path] | None = None
_zero = time.monotonic()
_times: dict[str, tuple[float, float]] = {}  # name: (start, end) seconds into the session


def build(name: str, after: Iterable[str] = (), nice: int | None = None) -> Callable:
    """Register the decorated ``make(folder, *after_results)`` as the run ``name``.

    ``nice``: its niceness (default :data:`NICE`); lower for a run that other runs wait for.
    """

    def register(make: Callable) -> Callable:
        _builds[name] = Build(name, make, tuple(after), NICE if nice is None else nice)
        return make

    return register


def names() -> set[str]:
    """The registered runs."""
    return set(_builds)


def use_folders(mktemp: Callable[[str], Path]) -> None:
    """Where runs get their temporary folders (the session's ``tmp_path_factory.mktemp``)."""
    global _folders, _zero
    _folders, _zero = mktemp, time.monotonic()


def start(name: str) -> Future:
    """Start ``name`` (after the runs it needs) unless it was started; its future."""
    with _lock:
        if name in _started:
            return _started[name]
        if name not in _builds:
            raise KeyError(f"no end-to-end run named {name!r}; registered: {sorted(_builds)}")
        spec = _builds[name]
        needed = [start(dep) for dep in spec.after]
        future: Future = Future()
        _started[name] = future
        folder = _folders(name) if _folders is not None else None
        thread = threading.Thread(
            target=_run, args=(spec, folder, needed, future), name=f"e2e-{name}", daemon=True
        )
        thread.start()
    return future


def _run(spec: Build, folder: Path | None, needed: list[Future], future: Future) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(spec.nice)
    try:
        values = [dep.result() for dep in needed]
        skipped = next((v for v in values if isinstance(v, Skipped)), None)
        if skipped is not None:
            future.set_result(skipped)
            return
        if folder is None:
            raise RuntimeError("tests/background.py: use_folders() was not called")
        begun = time.monotonic() - _zero
        try:
            future.set_result(spec.make(folder, *values))
        finally:
            _times[spec.name] = (begun, time.monotonic() - _zero)
    except BaseException as error:  # re-raised in the test that asks for the run
        future.set_exception(error)


def result(name: str) -> Any:
    """The finished run ``name`` (started now if it was not); skips the test if it was skipped."""
    value = start(name).result()
    if isinstance(value, Skipped):
        pytest.skip(value.reason)
    return value


def timeline() -> list[str]:
    """One line per finished run: when it started and how long it took (session seconds)."""
    return [
        f"{name:<18} {begun:6.0f} s + {end - begun:4.0f} s"
        for name, (begun, end) in sorted(_times.items(), key=lambda item: item[1])
    ]


def started() -> dict[str, Future]:
    """The runs started so far."""
    with _lock:
        return dict(_started)


_cleanups: list[Callable[[], None]] = []


def at_finish(cleanup: Callable[[], None]) -> None:
    """Call ``cleanup`` when the session ends, after every started run has ended."""
    _cleanups.append(cleanup)


def finish(wait: bool = True) -> None:
    """End the session's runs, then clean up (no subprocess outlives the session).

    ``wait``: let the started runs finish; otherwise (the session stops early, e.g. ``-x``)
    kill every process this one started, so their threads end at once.
    """
    if not wait:
        for pid in _descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for future in started().values():
        future.exception()  # waits; a failure is reported by the test that asked for the run
    while _cleanups:
        _cleanups.pop()()


def processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process (Linux /proc; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            found.append((int(stat.parent.name), fields[0], int(fields[1]), int(fields[2])))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _descendants(root: int) -> list[int]:
    """The processes below ``root`` in the process tree."""
    children: dict[int, list[int]] = {}
    for pid, _, parent, _ in processes():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
