"""The layer rule, read from the source (nothing is imported): no stage imports another stage
(shared helpers live in stages.common or the library; the stage runner stages.launch/
stages.server is not a stage), and the library imports no stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = "stages.common"
#: The stage runner (warm start), not stages: the server uses the launcher's protocol constants.
RUNNER = {"stages.launch", "stages.server"}


def imported_modules(source: str, module: str) -> set[str]:
    """Every module named by an import statement of ``source`` (the code of ``module``):
    ``import a.b`` -> a.b; ``from a import b`` -> a and a.b (b may be a module); relative
    imports are resolved against ``module``'s package."""
    found: set[str] = set()
    package = module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def stage_imports(source: str, module: str) -> set[str]:
    """The stage modules ``module`` imports (``stages.X`` of every ``stages.X[.name]``), other
    than stages.common."""
    named = {
        ".".join(name.split(".")[:2])
        for name in imported_modules(source, module)
        if name.startswith("stages.")
    }
    return named - {SHARED, module}


def modules(package: str) -> dict[str, str]:
    """``{dotted name: source}`` of every module of a top-level package."""
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): path.read_text()
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_no_stage_imports_another_stage() -> None:
    stages = modules("stages")
    assert "stages.common" in stages and "stages.evaluate" in stages  # the scan sees the stages
    offending = {
        (module, name)
        for module, source in stages.items()
        if module not in RUNNER
        for name in stage_imports(source, module)
    }
    assert not offending, f"stages importing other stages: {sorted(offending)}"


def test_the_library_imports_no_stage() -> None:
    library = modules("robustlab")
    assert "robustlab.outcome_tables" in library
    offending = {
        (module, name)
        for module, source in library.items()
        for name in imported_modules(source, module)
        if name == "stages" or name.startswith("stages.")
    }
    assert not offending, f"library modules importing stages: {sorted(offending)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from stages.aggregate import parse_run",
            {"stages.aggregate"},
        ),
        ("import stages.train", {"stages.train"}),
        ("from stages import perturb", {"stages.perturb"}),
        ("from . import report", {"stages.report"}),
        ("from .attack import outcome_frame", {"stages.attack"}),
        (
            "def f():\n    from stages.report import read_inputs",
            {"stages.report"},
        ),
    ],
)
def test_the_check_finds_every_form_of_stage_import(source: str, expected: set[str]) -> None:
    assert stage_imports(source, "stages.figures") == expected


@pytest.mark.parametrize(
    "source",
    [
        "from stages.common import parse_run, read_card",
        "import stages.common",
        "from stages import common",
        "from . import common",
        "from robustlab.outcome_tables import evaluate_tables",
        "import json\nimport numpy as np",
    ],
)
def test_the_check_allows_stages_common_and_the_library(source: str) -> None:
    assert stage_imports(source, "stages.figures") == set()
