"""HTML tables: a small cell model, its rendering, and the report's non-leaderboard tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

from robustlab.report.data import Entry
from robustlab.report.format import format_count, format_interval, format_percent


@dataclass(frozen=True)
class Cell:
    """One table cell: shown text, sort key, alignment and extra attributes."""

    text: str
    sort: str = ""
    is_text: bool = False
    attrs: Mapping[str, str] = field(default_factory=dict)
    html: str | None = None  # pre-escaped content that replaces ``text`` when given


def text_cell(value: str, **attrs: str) -> Cell:
    return Cell(value, value, True, attrs)


def number_cell(
    value: float | None,
    kind: str = "percent",
    interval: tuple[float, float] | None = None,
    n: int | None = None,
    **attrs: str,
) -> Cell:
    """A number (``percent``: two decimals; ``count``: k/M/G); ``–`` when absent.

    With an ``interval`` (percent), the 95 % interval is shown under the number (class ``ci``)
    and carried as ``data-ci-low``/``data-ci-high``; ``n`` (distinct images) goes to ``data-n``
    and the tooltip.
    """
    if value is None:
        return Cell("–", "", False, attrs)
    if math.isnan(value):
        return Cell("n/a", "", False, attrs)
    text = format_count(value) if kind == "count" else format_percent(value)
    if interval is None and n is None:
        return Cell(text, repr(float(value)), False, attrs)
    attrs = dict(attrs)
    tip = []
    if interval is not None:
        attrs["data-ci-low"] = repr(float(interval[0]))
        attrs["data-ci-high"] = repr(float(interval[1]))
        tip.append(f"95 % interval {interval[0]:.2f} to {interval[1]:.2f}")
    if n is not None:
        attrs["data-n"] = str(n)
        tip.append(f"n = {n} images")
    attrs["title"] = "; ".join([*tip, *([attrs["title"]] if "title" in attrs else [])])
    html = escape(text)
    if interval is not None:
        html += f'<span class="ci">{escape(format_interval(*interval))}</span>'
    return Cell(text, repr(float(value)), False, attrs, html)


def entry_cell(entry: Entry | None, kind: str = "percent", **attrs: str) -> Cell:
    """:func:`number_cell` of a metrics-table entry: its value and, where an interval applies,
    the interval and n."""
    if entry is None:
        return number_cell(None, kind, **attrs)
    interval = entry.interval
    return number_cell(entry.value, kind, interval, entry.n if interval else None, **attrs)


@dataclass(frozen=True)
class Column:
    """A header cell: label, optional tooltip, and an identifier for scripts and tests."""

    label: str
    title: str = ""
    key: str = ""
    is_text: bool = False


def _attrs(attrs: Mapping[str, str]) -> str:
    return "".join(f' {k}="{escape(v)}"' for k, v in sorted(attrs.items()))


def render_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    sortable: bool = True,
    table_id: str | None = None,
    row_attrs: Sequence[Mapping[str, str]] | None = None,
    css_class: str = "",
) -> str:
    """A ``<table>`` (sortable by clicking a header when ``sortable``) in a scrolling div."""
    classes = " ".join(c for c in ("sortable" if sortable else "", css_class) if c)
    attrs = {"class": classes} if classes else {}
    if table_id:
        attrs["id"] = table_id
    head = []
    for col in columns:
        a = {"scope": "col"}
        if col.is_text:
            a["class"] = "text"
        if col.title:
            a["title"] = col.title
        if col.key:
            a["data-col"] = col.key
        head.append(f"<th{_attrs(a)}>{escape(col.label)}</th>")
    body = []
    for i, row in enumerate(rows):
        cells = []
        for cell in row:
            a = dict(cell.attrs)
            if cell.is_text:
                a["class"] = (a.get("class", "") + " text").strip()
            a["data-sort"] = cell.sort
            content = cell.html if cell.html is not None else escape(cell.text)
            cells.append(f"<td{_attrs(a)}>{content}</td>")
        extra = _attrs(row_attrs[i]) if row_attrs else ""
        body.append(f"<tr{extra}>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table{_attrs(attrs)}><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
