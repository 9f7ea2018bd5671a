"""The self-contained HTML report.

Everything is inline (CSS, a small sorting script, figures as base64 data URIs), so the page
opens offline; it has no timestamp, so identical inputs give identical bytes. All text from the
inputs is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from robustlab.report import comparisons, sanity, sections
from robustlab.report.data import ReportData
from robustlab.report.provenance import provenance_html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em 2em;color:#222;
max-width:1600px;line-height:1.4}
h1,h2,h3{font-weight:600}
h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:2em}
nav.toc{font-size:0.9em;background:#f7f7f7;padding:0.5em 1em;border:1px solid #e3e3e3;
display:flex;flex-wrap:wrap;gap:0.3em 1.2em}
nav.toc a{white-space:nowrap}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;position:sticky;top:0;z-index:1;white-space:normal;vertical-align:bottom;
min-width:3.5em;max-width:9em}
table.sortable th{cursor:pointer}
table.sortable th:hover{background:#e2e8f0}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.text,th.text{text-align:left}
td.wrap{white-space:normal;min-width:18em;max-width:40em}
#leaderboard-table{font-size:0.8em}
#leaderboard-table td,#leaderboard-table th{padding:2px 5px}
#leaderboard-table tbody td:nth-child(2),#leaderboard-table thead th:nth-child(2){position:sticky;
left:0;background:#fff;z-index:2;box-shadow:1px 0 0 #ccc}
#leaderboard-table thead th:nth-child(2){background:#f0f0f0;z-index:3}
span.ci{display:block;font-size:0.8em;color:#666}
td.partial{text-decoration:underline dotted #b00020}
td.guard-fail{outline:2px solid #b00020;outline-offset:-2px;background:#fdecee}
td.guard-fail::after{content:" \\26A0";color:#b00020}
td.fail,a.fail,p.fail,.fail{color:#b00020;font-weight:600}
p.pass,a.pass{color:#1b5e20}
p.note{color:#555;font-style:italic}
div.warning{border-left:4px solid #b00020;background:#fdecee;padding:0.2em 1em;margin:1em 0}
.muted{color:#777;font-size:0.9em}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:1em 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:0.9em;color:#444;max-width:1100px}
dl.abbr{font-size:0.85em;display:grid;grid-template-columns:max-content 1fr;gap:0.15em 1em}
dl.abbr dt{font-weight:600}
dl.abbr dd{margin:0}
footer{margin-top:3em;font-size:0.85em;color:#444;border-top:1px solid #ccc}
table.kv th{text-align:left}
pre{background:#f7f7f7;padding:0.5em;overflow-x:auto}
details{margin:0.3em 0}
tr.clat-pair td{background:#eef5ff}
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

SECTIONS = (
    ("leaderboard", "Leaderboard"),
    ("summary", "Summary by noise family"),
    ("comparisons", "Paired comparisons"),
    ("adversarial", "Adversarial noise"),
    ("size", "Architecture and size (RobustART)"),
    ("robust-resnet", "RobustResNet: scaling and block design"),
    ("clat", "CLAT: critical-layer fine-tuning"),
    ("natural", "Natural noise"),
    ("system", "System noise"),
    ("sanity", "Evaluation sanity checks"),
)


def missing_figures(data: ReportData, figures: Mapping[str, bytes]) -> list[str]:
    """Figures the data support that ``figures`` lacks."""
    return [name for name in data.figure_names() if name not in figures]


def render_report(
    data: ReportData,
    figures: Mapping[str, bytes],
    versions: Mapping[str, str],
    provenance: Mapping[str, str] | None = None,
    params_text: str | None = None,
    title: str = "robustlab report",
) -> str:
    """The whole page. ``figures`` maps figure name (no ``.png``) to PNG bytes and must hold
    every figure the data support; ``provenance`` holds e.g. git revision and params hash."""
    missing = missing_figures(data, figures)
    if missing:
        raise ValueError(
            f"figures missing: {', '.join(f'{n}.png' for n in missing)}; draw them with "
            "stages.figures from the same tables"
        )
    body = {
        "leaderboard": sections.leaderboard_section(data),
        "summary": sections.summary_section(figures),
        "comparisons": comparisons.comparisons_section(data),
        "adversarial": sections.adversarial_section(data, figures),
        "size": sections.size_section(data, figures),
        "robust-resnet": sections.robust_resnet_section(data, figures),
        "clat": sections.clat_section(data, figures),
        "natural": sections.natural_section(data, figures),
        "system": sections.system_section(data, figures),
        "sanity": sanity.sanity_section(data),
    }
    toc = "".join(f'<a href="#{key}">{escape(label)}</a>' for key, label in SECTIONS)
    main = "\n".join(
        f'<section id="{key}"><h2>{escape(label)}</h2>\n{body[key]}\n</section>'
        for key, label in SECTIONS
    )
    datasets = ", ".join(data.datasets_present) or "no dataset"
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
<p>{len(data.runs)} run(s) on {escape(datasets)}: {len(data.archs)} architecture(s) x
{len(data.techniques)} technique(s). Accuracies and rates in percent; eps in pixel scale (images
in [0, 1]) in each attack's norm. Robust accuracy counts all attacked test images; WCAR counts
clean-correct images correct under every attack of its norm evaluated at that eps (listed per
eps under Adversarial noise). Under an accuracy, [low, high] is its 95 % interval (Wilson over
its n distinct images; a seeded bootstrap over images for a mean over corruptions or variants);
hover a number for n. Every number comes from the pipeline's tables (results/metrics.parquet and
the files named in the footer).</p>
<nav class="toc">{toc}<a href="#provenance">Provenance</a></nav>
{main}
<footer id="provenance">
<h2>Provenance</h2>
{provenance_html(data, provenance or {}, versions, params_text)}
</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""
