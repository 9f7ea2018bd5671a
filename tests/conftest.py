"""Shared test settings and the session's reference runs of the pipeline.

One torch thread (CI has two cores). The end-to-end tests share two finished `dvc repro` runs,
each computed once per session in a temporary copy of the repository and only read by the tests:
``smoke_reference`` (presets/smoke.yaml: two architectures, every technique, the report) for the
tests of the outputs' contents, and ``tiny_reference`` (tests/ops_helpers.py's TINY grid, pushed
to a local DVC remote) for the operations tests, which copy or clone it before changing anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.ops_helpers import Reference, build_reference, smoke_config, tiny_config

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smoke_reference(tmp_path_factory) -> Reference:
    """The smoke preset run once by `dvc repro` (params.yaml = params.yaml + presets/smoke.yaml)."""
    return build_reference(tmp_path_factory.mktemp("smoke-reference"), smoke_config(), push=False)


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory) -> Reference:
    """The TINY grid run once, uninterrupted, by `dvc repro`; pushed to a local DVC remote.

    Its output cache (``Reference.output_cache``) holds the trained models, so experiments in
    clones that point ROBUSTLAB_OUTPUT_CACHE at it reuse them.
    """
    return build_reference(tmp_path_factory.mktemp("tiny-reference"), tiny_config())
