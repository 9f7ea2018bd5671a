"""The evaluation sanity checks in the report: which numbers each check guards, the
per-model status, and the section listing every check (a failure is shown, never hidden)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

import pandas as pd

from robustlab.report.data import ReportData, Run
from robustlab.report.format import model_label
from robustlab.report.tables import Column, number_cell, render_table, text_cell

# Checks about the model or every attack at once: they guard every adversarial number.
MODEL_CHECKS = frozenset(
    {
        "budget_respected",
        "pixel_range",
        "no_zero_input_gradients",
        "outputs_are_logits",
        "deterministic_forward",
    }
)
# Checks whose detail names the transferred attack after the white-box one: only the first
# attack named is this model's number.
FIRST_ATTACK_ONLY = frozenset({"whitebox_not_weaker_than_transfer"})
CLEAN_CHECKS = frozenset({"eps_zero_reproduces_clean"})
ALL = "*"


def _mentioned(detail: str, attacks: Sequence[str]) -> list[str]:
    hits = []
    for attack in attacks:
        found = re.search(rf"(?<![A-Za-z0-9_]){re.escape(attack)}(?![A-Za-z0-9_])", detail)
        if found:
            hits.append((found.start(), attack))
    return [a for _, a in sorted(hits)]


def guarded(check: str, detail: str, attacks: Sequence[str]) -> set[str]:
    """What a check guards: attack names, ``clean``, or ``*`` (every adversarial number)."""
    if check in MODEL_CHECKS:
        return {ALL}
    if check == "autoattack_flags":
        return {"autoattack"}
    named = _mentioned(detail, attacks)
    if check in FIRST_ATTACK_ONLY:
        named = named[:1]
    out = set(named) or {ALL}
    if check in CLEAN_CHECKS:
        out.add("clean")
    return out


def run_of(row: object) -> Run:
    return (str(row.dataset), str(row.arch), str(row.technique))  # type: ignore[attr-defined]


def failed_guards(data: ReportData) -> dict[Run, dict[str, list[str]]]:
    """Per run, ``{attack | "clean" | "*": [failed check names]}``."""
    out: dict[Run, dict[str, list[str]]] = {}
    if data.sanity is None or data.sanity.empty:
        return out
    for row in data.sanity.itertuples(index=False):
        if bool(row.passed):
            continue
        run = run_of(row)
        for target in guarded(str(row.check), str(row.detail), data.attacks(run[0])):
            out.setdefault(run, {}).setdefault(target, []).append(str(row.check))
    return out


def status(data: ReportData) -> dict[Run, tuple[int, int]]:
    """``(passed, total)`` checks per run."""
    if data.sanity is None or data.sanity.empty:
        return {}
    out = {}
    for run, group in data.sanity.groupby(["dataset", "arch", "technique"], sort=True):
        out[tuple(map(str, run))] = (int(group["passed"].astype(bool).sum()), len(group))
    return out


def run_anchor(data: ReportData, run: Run) -> str:
    """The id of a run's row in the sanity section (stable: position in the sorted runs)."""
    runs = sorted(set(data.runs) | set(status(data)))
    return f"sanity-run-{runs.index(run)}"


def _check_rows(frame: pd.DataFrame) -> list[list]:
    return [
        [
            text_cell(str(r.dataset)),
            text_cell(model_label(str(r.arch), str(r.technique))),
            text_cell(str(r.check)),
            text_cell("pass" if r.passed else "FAIL", **({} if r.passed else {"class": "fail"})),
            number_cell(float(r.value)),
            number_cell(float(r.threshold)),
            text_cell(str(r.detail), **{"class": "wrap"}),
        ]
        for r in frame.itertuples(index=False)
    ]


CHECK_COLUMNS = [
    Column("dataset", is_text=True),
    Column("model", is_text=True),
    Column("check", is_text=True),
    Column("result", is_text=True),
    Column("value", "the measured number (points or share)"),
    Column("bound", "the bound the value was held to"),
    Column("what was compared", is_text=True),
]


def summary_line(sanity: pd.DataFrame) -> str:
    failed = int((~sanity["passed"].astype(bool)).sum())
    if failed:
        return (
            f"<p class=fail>{failed} of {len(sanity)} checks FAILED; the numbers they guard are "
            "marked in the leaderboard and should not be trusted until the cause is found.</p>"
        )
    return f"<p class=pass>All {len(sanity)} checks passed.</p>"


def sanity_section(data: ReportData) -> str:
    """Summary, per-model status (anchors the leaderboard links to), failures, every check."""
    sanity = data.sanity
    if sanity is None or sanity.empty:
        return (
            "<p>No sanity checks were computed: pass results/sanity.parquet (written by "
            "stages.sanity) to the report stage.</p>"
        )
    counts = status(data)
    guards = failed_guards(data)
    rows, attrs = [], []
    for run in sorted(counts):
        ok, total = counts[run]
        failed = sorted({c for checks in guards.get(run, {}).values() for c in checks})
        cls = {"class": "fail"} if ok < total else {}
        rows.append(
            [
                text_cell(run[0]),
                text_cell(run[1]),
                text_cell(run[2]),
                text_cell(f"{ok}/{total}", **cls),
                text_cell(", ".join(failed) or "none"),
            ]
        )
        attrs.append({"id": run_anchor(data, run)})
    per_model = render_table(
        [
            Column("dataset", is_text=True),
            Column("arch", is_text=True),
            Column("technique", is_text=True),
            Column("passed/total", is_text=True),
            Column("failed checks", is_text=True),
        ],
        rows,
        sortable=False,
        row_attrs=attrs,
    )
    failed = sanity[~sanity["passed"].astype(bool)]
    ordered = pd.concat([failed, sanity[sanity["passed"].astype(bool)]])
    parts = [summary_line(sanity), "<h3>Per model</h3>", per_model]
    if len(failed):
        parts += [
            "<h3>Failed checks</h3>",
            render_table(CHECK_COLUMNS, _check_rows(failed), sortable=False, css_class="failed"),
        ]
    parts.append(
        f"<details><summary>All {len(sanity)} checks (failures first)</summary>"
        f"{render_table(CHECK_COLUMNS, _check_rows(ordered))}</details>"
    )
    return "\n".join(parts)


def failures_note(data: ReportData) -> str:
    """A warning paragraph listing the failed checks, for the sections whose numbers they
    guard; empty when every check passed."""
    if data.sanity is None or data.sanity.empty:
        return ""
    failed = data.sanity[~data.sanity["passed"].astype(bool)]
    if failed.empty:
        return ""
    items = "".join(
        f'<li><a href="#{run_anchor(data, run_of(r))}">'
        f"{escape(model_label(str(r.arch), str(r.technique)))}</a> ({escape(str(r.dataset))}): "
        f"<code>{escape(str(r.check))}</code>: {escape(str(r.detail))}</li>"
        for r in failed.itertuples(index=False)
    )
    return (
        f'<div class="warning"><p class=fail>{len(failed)} evaluation sanity check(s) failed for '
        f"numbers shown here:</p><ul>{items}</ul></div>"
    )
