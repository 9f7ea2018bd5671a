"""README.md and docs/*.md name only files, modules, rules and make targets that exist.

A path is checked when it starts with a top-level folder or file of the repository or names a
Markdown page (generated outputs such as ``results/`` and templated paths such as
``models/{run}/`` are not); a module when it is ``stages.X`` or ``robustlab.X...``; a rule when
it sits in a ``rule``/``rules`` column of a table or after ``rule``, ``--forcerun``,
``--allowed-rules``, ``--cache`` or ``--set-resources``; a make target after ``make``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CHECKED_ROOTS = (
    "bench",
    "docs",
    "presets",
    "profiles",
    "robustlab",
    "scripts",
    "stages",
    "tests",
    "workflow",
    "dvc.yaml",
    "Makefile",
    "params.yaml",
    "pyproject.toml",
    "requirements.lock",
    "requirements-nodeps.lock",
)
CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"^[\w.\-/]+(::\w+)?$")
MODULE = re.compile(r"\b((?:stages|robustlab)(?:\.\w+)+)")
RULE_OPTION = re.compile(r"(?:--forcerun|--allowed-rules|--cache)((?:\s+[a-z_]+)+)")


def _rules() -> set[str]:
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r"^rule (\w+):", text, re.M)) | set(
        re.findall(r"^use rule \w+ as (\w+)", text, re.M)
    )


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


def _module_exists(dotted: str) -> bool:
    """Whether the longest importable prefix of ``dotted`` is a module below the top package."""
    parts = dotted.split(".")
    for k in range(len(parts), 1, -1):
        base = REPO.joinpath(*parts[:k])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    return False


def _path_problem(token: str) -> str | None:
    """Why ``token`` names a missing file, or None when it exists or is not a repo path."""
    token = token.rstrip(".,;:)")
    if PATH.match(token) and token.endswith(".md"):  # a page: from the root or docs/
        found = (REPO / token).exists() or (REPO / "docs" / token).exists()
        return None if found else f"page {token} does not exist"
    if not PATH.match(token) or token.split("/")[0] not in CHECKED_ROOTS:
        return None
    if "/" not in token and "." not in token:
        return None  # a bare word such as `docs` or `tests` in prose
    path, _, test = token.partition("::")
    if not (REPO / path).exists():
        return f"path {path} does not exist"
    if test and not re.search(rf"^def {test}\(", (REPO / path).read_text(), re.M):
        return f"{path} has no test {test}"
    return None


def _table_rule_cells(text: str):
    """(line number, cell) of every cell under a `rule`/`rules` header of a Markdown table."""
    columns: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            columns = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not columns and any(c in ("rule", "rules") for c in cells):
            columns = [i for i, c in enumerate(cells) if c in ("rule", "rules")]
            continue
        for i in columns:
            if i < len(cells) and not set(cells[i]) <= set("-: "):
                yield number, cells[i]


def problems(page: Path, text: str | None = None) -> list[str]:
    """Every reference on ``page`` (or in ``text``, links relative to ``page``) to something
    that does not exist, as 'page:line: why'."""
    rules, targets = _rules(), _make_targets()
    text = page.read_text() if text is None else text
    found: list[str] = []
    name = page.relative_to(REPO) if page.is_relative_to(REPO) else page.name
    for number, line in enumerate(text.splitlines(), 1):
        for code in CODE.findall(line):
            why = _path_problem(code.strip())
            if why:
                found.append(f"{name}:{number}: {why}")
            for dotted in MODULE.findall(code):
                if not _module_exists(dotted):
                    found.append(f"{name}:{number}: module {dotted} does not exist")
            if code.startswith("make "):
                target = code.split()[1]
                if target not in targets:
                    found.append(f"{name}:{number}: make target {target} does not exist")
            for group in RULE_OPTION.findall(code):
                for rule in group.split():
                    if rule not in rules:
                        found.append(f"{name}:{number}: rule {rule} does not exist")
            for rule in re.findall(r"--set-resources\s+(\w+):", code):
                if rule not in rules:
                    found.append(f"{name}:{number}: rule {rule} does not exist")
        for rule in re.findall(r"\brule `(\w+)`", line):
            if rule not in rules:
                found.append(f"{name}:{number}: rule {rule} does not exist")
        for target in LINK.findall(line):
            if "://" in target or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                found.append(f"{name}:{number}: link {target} does not exist")
    for number, cell in _table_rule_cells(text):
        cell = re.sub(r"\([^)]*\)", "", cell)  # "(expanded into the grid by ...)"
        if "`" in cell:
            names = CODE.findall(cell)
        elif re.fullmatch(r"\w+(, \w+)*", cell):  # a plain list: "prepare, corrupt"
            names = cell.split(", ")
        else:
            continue  # prose such as "everything else"
        for rule in names:
            if rule not in rules:
                found.append(f"{name}:{number}: rule {rule} (table) does not exist")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_reference_only_what_exists(page: Path) -> None:
    assert problems(page) == []


def test_the_check_finds_missing_references(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("")
    text = (
        "`stages/nope.py` `stages.nope` `robustlab.nope.x` `make nope`\n"
        "`snakemake --forcerun train nope` rule `nope2` [x](nope.md)\n"
        "`tests/test_docs_links.py::test_nope` `params.yaml` `stages.train` `results/x.parquet`\n"
        "`robustlab.models.build_model` `make run` rule `train` [y](there.md) `docs/README.md`\n"
        "`tests/test_docs_links.py::test_the_check_finds_missing_references` `resnet18/34/50`\n"
        "`notes/nope.md` `README.md` `attacks.md`\n"
        "\n| rules | what |\n| --- | --- |\n| prepare, nope3 | x |\n"
    )
    found = problems(tmp_path / "page.md", text)
    assert [f.split(": ", 1)[1] for f in found] == [
        "path stages/nope.py does not exist",
        "module stages.nope does not exist",
        "module robustlab.nope.x does not exist",
        "make target nope does not exist",
        "rule nope does not exist",
        "rule nope2 does not exist",
        "link nope.md does not exist",
        "tests/test_docs_links.py has no test test_nope",
        "page notes/nope.md does not exist",
        "rule nope3 (table) does not exist",
    ]
