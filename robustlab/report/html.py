"""The self-contained HTML report: leaderboard, figures, per-corruption tables, provenance.

Everything is inline (CSS, a tiny sorting script, figures as base64 data URIs), so the page
opens offline; it has no timestamp, so identical inputs give identical bytes. All text from
the inputs is escaped.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from html import escape

import pandas as pd

from robustlab.metrics.table import format_level

FIGURE_CAPTIONS = {
    "accuracy_by_noise_family.png": (
        "Clean accuracy, adversarial robust accuracy (mean over attacks and eps) and accuracy "
        "under natural corruptions (mean over corruptions and severities) per model."
    ),
    "robust_accuracy_vs_eps.png": (
        "Robust accuracy (over all test images) against the attack budget eps in pixel scale; "
        "eps 0 is the clean accuracy."
    ),
    "corruption_accuracy_vs_severity.png": (
        "Accuracy averaged over corruptions against severity; severity 0 is the clean accuracy."
    ),
}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;
max-width:1400px}
h1,h2,h3{font-weight:600}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;position:sticky;top:0}
table.sortable th{cursor:pointer}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.text,th.text{text-align:left}
p.fail{color:#b00020;font-weight:600}
p.pass{color:#1b5e20}
.scroll{overflow-x:auto}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.9em;color:#555}
footer{margin-top:3em;font-size:0.85em;color:#555;border-top:1px solid #ccc}
pre{background:#f7f7f7;padding:0.5em;overflow-x:auto}
"""

SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var nx = Number(x), ny = Number(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

Cell = tuple[str, str, bool]  # (display text, sort key, is text)
Key = tuple[str, str, str, str, str, float | None, str]


def format_percent(value: float) -> str:
    """``12.35`` (two decimals) or ``n/a`` for NaN."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def format_count(value: float) -> str:
    """Parameter / MAC counts with a k/M/G suffix."""
    if math.isnan(value):
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def _index(frame: pd.DataFrame) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for r in frame.itertuples(index=False):
        level = None if math.isnan(r.level) else float(r.level)
        key = (r.dataset, r.arch, r.technique, r.family, r.noise, level, r.metric)
        out[key] = float(r.value)
    return out


def _num(value: float | None, fmt: str = "percent") -> Cell:
    if value is None or math.isnan(value):
        return ("n/a" if value is not None else "–", "", False)
    text = format_count(value) if fmt == "count" else format_percent(value)
    return (text, repr(value), False)


def _text(value: str) -> Cell:
    return (value, value, True)


def _levels(frame: pd.DataFrame, **equal: str) -> list[tuple[str, float]]:
    mask = pd.Series(True, index=frame.index)
    for col, value in equal.items():
        mask &= frame[col] == value
    pairs = frame.loc[mask, ["noise", "level"]].drop_duplicates()
    return sorted((str(n), float(lv)) for n, lv in pairs.itertuples(index=False))


def leaderboard(
    frame: pd.DataFrame, arch_families: Mapping[str, str]
) -> tuple[list[str], list[list[Cell]]]:
    """Header and rows of the leaderboard: one row per (dataset, arch, technique)."""
    values = _index(frame)
    attack_cols = _levels(frame, family="adversarial", metric="robust_accuracy")
    wcar_cols = [lv for _, lv in _levels(frame, family="adversarial", metric="wcar")]
    normalised = [
        (m, label)
        for m, label in (("mce", "mCE (%)"), ("relative_mce", "relative mCE (%)"))
        if (frame["metric"] == m).any()
    ]
    header = ["dataset", "arch", "technique", "arch family", "params", "MACs", "clean acc. (%)"]
    header += [f"robust acc. {a}@{format_level(e)} (%)" for a, e in attack_cols]
    header += [f"WCAR@{format_level(e)} (%)" for e in wcar_cols]
    header += ["mean corruption acc. (%)", "mCE unnormalised (%)"]
    header += [label for _, label in normalised]
    runs = sorted(set(frame[["dataset", "arch", "technique"]].itertuples(index=False, name=None)))
    rows = []
    for run in runs:

        def get(
            family: str,
            noise: str,
            level: float | None,
            metric: str,
            run: tuple[str, str, str] = run,
        ) -> float | None:
            return values.get((*run, family, noise, level, metric))

        row = [_text(v) for v in run] + [_text(arch_families.get(run[1], "unknown"))]
        row += [_num(get("complexity", "", None, m), "count") for m in ("params", "macs")]
        row.append(_num(get("clean", "", None, "accuracy")))
        row += [_num(get("adversarial", n, e, "robust_accuracy")) for n, e in attack_cols]
        row += [_num(get("adversarial", "all_attacks", e, "wcar")) for e in wcar_cols]
        row.append(_num(get("natural", "all_corruptions", None, "accuracy")))
        row.append(_num(get("natural", "all_corruptions", None, "mce_unnormalised")))
        row += [_num(get("natural", "all_corruptions", None, m)) for m, _ in normalised]
        rows.append(row)
    return header, rows


def _table(header: list[str], rows: list[list[Cell]], sortable: bool, text_cols: int) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(
        f"<th{' class=text' if i < text_cols else ''}>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td{" class=text" if is_text else ""} data-sort="{escape(key)}">{escape(text)}</td>'
            for text, key, is_text in row
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def corruption_tables(frame: pd.DataFrame) -> str:
    """Per model, a corruption x severity accuracy table (with CE columns when present)."""
    values = _index(frame)
    nat = frame[(frame["family"] == "natural") & (frame["metric"] == "accuracy")]
    nat = nat[nat["level"].notna()]
    parts = []
    runs = sorted(set(nat[["dataset", "arch", "technique"]].itertuples(index=False, name=None)))
    for d, a, t in runs:
        mine = nat[(nat["dataset"] == d) & (nat["arch"] == a) & (nat["technique"] == t)]
        severities = sorted(set(mine["level"].astype(float)))
        has_ce = any(k[:3] == (d, a, t) and k[6] == "ce" for k in values)
        header = ["corruption"] + [f"severity {format_level(s)}" for s in severities] + ["mean"]
        header += ["CE (%)", "relative CE (%)"] if has_ce else []
        rows = []
        for corruption in sorted(set(mine["noise"].astype(str))):
            accs = [values.get((d, a, t, "natural", corruption, s, "accuracy")) for s in severities]
            present = [v for v in accs if v is not None]
            mean = sum(present) / len(present) if present else None
            row = [_text(corruption), *(_num(v) for v in accs), _num(mean)]
            if has_ce:
                row += [
                    _num(values.get((d, a, t, "natural", corruption, None, m)))
                    for m in ("ce", "relative_ce")
                ]
            rows.append(row)
        parts.append(
            f"<details><summary>{escape(f'{d}: {a}/{t}')}</summary>"
            f"{_table(header, rows, sortable=True, text_cols=1)}</details>"
        )
    return "\n".join(parts) if parts else "<p>No natural-corruption results.</p>"


def sanity_section(sanity: pd.DataFrame | None) -> str:
    """Summary and per-check table of the evaluation sanity checks; failures first."""
    if sanity is None or sanity.empty:
        return "<p>No sanity checks were computed (results/sanity.parquet is absent).</p>"
    failed = sanity[~sanity["passed"].astype(bool)]
    summary = (
        f"<p class=fail>{len(failed)} of {len(sanity)} checks FAILED; the numbers they guard "
        "should not be trusted until the cause is found.</p>"
        if len(failed)
        else f"<p class=pass>All {len(sanity)} checks passed.</p>"
    )
    ordered = pd.concat([failed, sanity[sanity["passed"].astype(bool)]])
    header = ["dataset", "arch", "technique", "check", "result", "value", "bound", "what"]
    rows = [
        [
            _text(str(r.dataset)),
            _text(str(r.arch)),
            _text(str(r.technique)),
            _text(str(r.check)),
            _text("pass" if r.passed else "FAIL"),
            (f"{r.value:.4g}", repr(float(r.value)), False),
            (f"{r.threshold:.4g}", repr(float(r.threshold)), False),
            _text(str(r.detail)),
        ]
        for r in ordered.itertuples(index=False)
    ]
    return summary + _table(header, rows, sortable=True, text_cols=5)


def transfer_section(transfer: pd.DataFrame | None) -> str:
    """Transfer ASR per (attack, eps): source rows x target columns."""
    if transfer is None or transfer.empty:
        return "<p>No transfer results.</p>"
    parts = []
    for (dataset, attack, eps), group in transfer.groupby(["dataset", "attack", "eps"], sort=True):
        group = group.assign(
            source=group["source_arch"] + "/" + group["source_technique"],
            target=group["target_arch"] + "/" + group["target_technique"],
        )
        targets = sorted(set(group["target"]))
        values = {(r.source, r.target): r.asr for r in group.itertuples(index=False)}
        rows = [
            [_text(source), *(_num(values.get((source, t))) for t in targets)]
            for source in sorted(set(group["source"]))
        ]
        parts.append(
            f"<h3>{escape(f'{dataset}: {attack} at eps {format_level(eps)}')}</h3>"
            + _table(["source → target", *targets], rows, sortable=False, text_cols=1)
        )
    return "\n".join(parts)


def sanity_status(sanity: pd.DataFrame | None) -> dict[tuple[str, str, str], str]:
    """``passed/total`` of the sanity checks per run, for the leaderboard."""
    if sanity is None or sanity.empty:
        return {}
    out = {}
    for run, group in sanity.groupby(["dataset", "arch", "technique"], sort=True):
        ok = int(group["passed"].astype(bool).sum())
        out[tuple(map(str, run))] = f"{ok}/{len(group)} passed"
    return out


def render_report(
    frame: pd.DataFrame,
    figures: Mapping[str, bytes],
    arch_families: Mapping[str, str],
    versions: Mapping[str, str],
    provenance: Mapping[str, str] | None = None,
    params_text: str | None = None,
    title: str = "robustlab report",
    sanity: pd.DataFrame | None = None,
    transfer: pd.DataFrame | None = None,
) -> str:
    """The whole page as a string. ``figures`` maps file name -> PNG bytes (shown in order),
    ``provenance`` holds e.g. git revision and params hash, ``params_text`` the params file,
    ``sanity`` and ``transfer`` the tables of results/sanity.parquet and transfer.parquet."""
    header, rows = leaderboard(frame, arch_families)
    status = sanity_status(sanity)
    if status:
        header = [*header, "sanity checks"]
        rows = [[*row, _text(status.get(tuple(c[0] for c in row[:3]), "none"))] for row in rows]
    datasets = sorted(set(frame["dataset"].astype(str)))
    n_runs = len(rows)
    figure_html = []
    for name, data in figures.items():
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        caption = FIGURE_CAPTIONS.get(name, name)
        figure_html.append(
            f'<figure><img src="{uri}" alt="{escape(name)}">'
            f"<figcaption>{escape(name)}: {escape(caption)}</figcaption></figure>"
        )
    prov_rows = "".join(
        f"<tr><th class=text>{escape(k)}</th><td class=text>{escape(v)}</td></tr>"
        for k, v in sorted((provenance or {}).items())
    )
    version_rows = "".join(
        f"<tr><th class=text>{escape(k)}</th><td class=text>{escape(v)}</td></tr>"
        for k, v in sorted(versions.items())
    )
    params_html = (
        f"<details><summary>parameters file</summary><pre>{escape(params_text)}</pre></details>"
        if params_text is not None
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p>{n_runs} run(s) on {escape(", ".join(datasets) or "no dataset")}. Accuracies and rates in
percent; eps in pixel scale (images in [0, 1]). Robust accuracy counts all test images; WCAR
counts clean-correct images correct under every attack at that eps. mCE unnormalised is the mean
corruption error (RobustART); mCE and relative mCE are normalised by the dataset's baseline run
(Hendrycks &amp; Dietterich). Click a column header to sort.</p>
<h2>Leaderboard</h2>
{_table(header, rows, sortable=True, text_cols=4)}
<h2>Evaluation sanity checks</h2>
{sanity_section(sanity)}
<h2>Transfer attack success rate (%)</h2>
<p>Among images both the source and the target classify correctly, the share whose adversarial
example crafted on the source fools the target (RobustART). The diagonal is white-box.</p>
{transfer_section(transfer)}
<h2>Figures</h2>
{"".join(figure_html) or "<p>No figures.</p>"}
<h2>Accuracy per corruption and severity (%)</h2>
{corruption_tables(frame)}
<footer>
<h2>Provenance</h2>
<table>{prov_rows}{version_rows}</table>
{params_html}
<p>Generated deterministically from the metrics table and the figures above: identical
inputs give an identical page (no timestamp).</p>
</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""
