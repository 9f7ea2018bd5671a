"""Shared test settings and the session's reference runs of the pipeline.

One torch thread (CI has two cores). The end-to-end runs (tests/background.py) start in
background threads as soon as the tests are collected, and the tests that read them run last, so
the unit tests use the cores those runs leave idle. The end-to-end tests share two finished
`dvc repro` runs, each computed once per session in a temporary copy of the repository and only
read by the tests:
``smoke_reference`` (presets/smoke.yaml: two architectures, every technique, the report) for the
tests of the outputs' contents, and ``tiny_reference`` (tests/ops_helpers.py's TINY grid, pushed
to a local DVC remote) for the operations tests, which copy or clone it before changing anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests import background
from tests.ops_helpers import Reference, build_reference, smoke_config, tiny_config

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@background.build("smoke_reference", nice=4)  # the longest run
def _smoke_reference(folder: Path) -> Reference:
    return build_reference(folder, smoke_config(), push=False)


@background.build("tiny_reference", nice=4)  # six runs start from it
def _tiny_reference(folder: Path) -> Reference:
    return build_reference(folder, tiny_config())


@pytest.fixture(scope="session")
def smoke_reference() -> Reference:
    """The smoke preset run once by `dvc repro` (params.yaml = params.yaml + presets/smoke.yaml)."""
    return background.result("smoke_reference")


@pytest.fixture(scope="session")
def tiny_reference() -> Reference:
    """The TINY grid run once, uninterrupted, by `dvc repro`; pushed to a local DVC remote.

    Its output cache (``Reference.output_cache``) holds the trained models, so experiments in
    clones that point ROBUSTLAB_OUTPUT_CACHE at it reuse them.
    """
    return background.result("tiny_reference")


def _uses_a_run(item: pytest.Item) -> bool:
    return bool(background.names() & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that read an end-to-end run go last (in their order), after the unit tests."""
    items[:] = [i for i in items if not _uses_a_run(i)] + [i for i in items if _uses_a_run(i)]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start every end-to-end run that a collected test reads."""
    if session.config.option.collectonly:
        return
    factory = session.config._tmp_path_factory
    background.use_folders(factory.mktemp)
    needed = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for name in sorted(needed & background.names()):
        background.start(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Wait for the end-to-end runs; stopped early (``-x``, Ctrl-C), kill them instead."""
    stopped = bool(session.shouldstop or session.shouldfail)
    background.finish(wait=not stopped and exitstatus != pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter) -> None:
    """When each end-to-end run started and how long it took (to find the slowest chain)."""
    lines = background.timeline()
    if lines:
        terminalreporter.write_sep("-", "end-to-end runs (background): start + duration")
        for line in lines:
            terminalreporter.write_line(line)
