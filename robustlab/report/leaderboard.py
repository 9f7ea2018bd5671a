"""The leaderboard: one row per (dataset, arch, technique), every headline number of the run.

Each number cell carries ``data-metric`` (``family|noise|level|metric`` of its row in
``results/metrics.parquet``) and ``data-value`` (the exact value), so a reader's script or a
test can check it against the table. A cell whose number a failed sanity check guards gets the
class ``guard-fail`` and a tooltip naming the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from robustlab.metrics.natural import CORRUPTION_SETS, IMAGENET_C
from robustlab.report import sanity
from robustlab.report.data import ReportData, Run
from robustlab.report.format import family_name, format_level
from robustlab.report.panels import corruption_set_label, evaluated_corruptions
from robustlab.report.tables import Cell, Column, entry_cell, render_table, text_cell


@dataclass(frozen=True)
class NumberColumn:
    """A leaderboard column backed by one metrics row per run."""

    column: Column
    family: str
    noise: str
    level: float | None
    metric: str
    kind: str = "percent"  # or "count"
    guard: str | None = None  # attack name, "clean" or "wcar": which sanity failures mark it

    def metric_key(self) -> str:
        level = "" if self.level is None else repr(float(self.level))
        return f"{self.family}|{self.noise}|{level}|{self.metric}"


def _col(label: str, title: str, key: str) -> Column:
    return Column(label, title, key)


def number_columns(data: ReportData) -> list[NumberColumn]:
    """The numeric columns present in the data, in display order."""
    m = data.metrics
    has = set(m["metric"].astype(str))
    cols = [
        NumberColumn(
            _col("params", "trainable and frozen parameters", "params"),
            "complexity",
            "",
            None,
            "params",
            "count",
        ),
        NumberColumn(
            _col("MACs", "multiply-accumulates of one forward pass on one image", "macs"),
            "complexity",
            "",
            None,
            "macs",
            "count",
        ),
        NumberColumn(
            _col("clean acc. (%)", "top-1 accuracy on the clean test images", "clean"),
            "clean",
            "",
            None,
            "accuracy",
            guard="clean",
        ),
    ]
    adv = m[(m["family"] == "adversarial") & (m["metric"] == "robust_accuracy")]
    pairs = sorted({(str(a), float(e)) for a, e in zip(adv["noise"], adv["level"], strict=True)})
    pairs.sort(key=lambda p: (p[0] == "autoattack", p[0], p[1]))
    for attack, eps in pairs:
        name = "AutoAttack" if attack == "autoattack" else attack
        label = f"{name} @ {format_level(eps)} (%)"
        title = (
            f"robust accuracy over all attacked test images under {attack} "
            f"({data.norm_label(attack)}) at eps {format_level(eps)}"
        )
        key = f"adv-{attack}-{format_level(eps)}"
        cols.append(
            NumberColumn(
                _col(label, title, key), "adversarial", attack, eps, "robust_accuracy", guard=attack
            )
        )
    cover = data.wcar_coverage
    wcar = cover[cover["noise"] == "all_attacks"]
    for eps in sorted(set(wcar["level"].astype(float))):
        at = wcar[wcar["level"] == eps]
        attacks = " | ".join(sorted(set(at["attacks"])))
        missing = sorted({a for m in at["missing"] for a in m.split(", ") if a})
        title = (
            f"worst-case adversarial robustness at eps {format_level(eps)}: share of the "
            f"clean-correct images correct under every L-inf attack evaluated there ({attacks})"
        )
        if missing:
            title += f"; partial: lacks {', '.join(missing)}, run at other eps only"
        cols.append(
            NumberColumn(
                _col(f"WCAR @ {format_level(eps)} (%)", title, f"wcar-{format_level(eps)}"),
                "adversarial",
                "all_attacks",
                eps,
                "wcar",
                guard="wcar",
            )
        )
    cols += corruption_columns(data)
    stability = [
        (
            "mean_flip_probability",
            "mFP (%)",
            "mean flip probability over perturbation sequences (ImageNet-P); lower is more stable",
        ),
        (
            "mfr",
            "mFR (%)",
            "mean flip rate: flip probability relative to the baseline model's, "
            "averaged over perturbations; lower is more stable",
        ),
    ]
    for metric, label, title in stability:
        if metric in has:
            cols.append(
                NumberColumn(
                    _col(label, title, metric), "natural", "all_perturbations", None, metric
                )
            )
    system = [
        ("mean_accuracy", "system acc. (%)", "mean accuracy over decoder/resize variants"),
        (
            "nsd",
            "NSD",
            "noise stability: minus the standard deviation (points) of accuracy "
            "over decoder/resize variants; higher (closer to 0) is better",
        ),
    ]
    for metric, label, title in system:
        if metric in has:
            cols.append(
                NumberColumn(_col(label, title, metric), "system", "all_variants", None, metric)
            )
    if "trainable_params" in has:
        cols.append(
            NumberColumn(
                _col(
                    "trainable params",
                    "parameters updated in the last training phase (fewer for CLAT)",
                    "trainable_params",
                ),
                "complexity",
                "",
                None,
                "trainable_params",
                "count",
            )
        )
    return cols


def corruption_columns(data: ReportData) -> list[NumberColumn]:
    """Per corruption set with rows: its mean accuracy; for ImageNet-C also mCE, relative mCE
    and unnormalised mCE (over the ImageNet-C corruptions only; the titles say how many of the
    15 were evaluated)."""
    m = data.metrics
    natural = m[m["family"] == "natural"]
    cols = []
    for set_name in CORRUPTION_SETS:
        has = set(natural.loc[natural["noise"] == set_name, "metric"].astype(str))
        if not has:
            continue
        label = corruption_set_label(set_name)
        count = len(evaluated_corruptions(data, set_name))
        over = f"the {count} of {len(CORRUPTION_SETS[set_name])} {label} corruptions evaluated"
        specs = [("accuracy", f"{label} acc. (%)", f"mean accuracy over {over} and severities")]
        if set_name == IMAGENET_C:
            specs += [
                (
                    "mce",
                    "mCE (%)",
                    f"mean corruption error over {over}: each corruption's error summed over "
                    "severities divided by the baseline model's on the same images "
                    "(Hendrycks); lower is better",
                ),
                (
                    "relative_mce",
                    "relative mCE (%)",
                    f"mean over {over} of the error increase over clean (on the same "
                    "images), relative to the baseline model's increase; lower is better",
                ),
                (
                    "mce_unnormalised",
                    "mCE unnorm. (%)",
                    f"mean error over {over} and severities, not normalised (RobustART's "
                    "code); lower is better",
                ),
            ]
        for metric, col_label, title in specs:
            if metric in has:
                key = f"{set_name}-{metric}"
                cols.append(
                    NumberColumn(_col(col_label, title, key), "natural", set_name, None, metric)
                )
    return cols


TEXT_COLUMNS = [
    Column("dataset", key="dataset", is_text=True),
    Column("arch", key="arch", is_text=True),
    Column("technique", key="technique", is_text=True),
    Column("family", "architecture family", key="family", is_text=True),
]


def _flag(cell: Cell, checks: list[str]) -> Cell:
    if not checks:
        return cell
    attrs = dict(cell.attrs)
    attrs["class"] = (attrs.get("class", "") + " guard-fail").strip()
    note = "failed sanity check(s): " + ", ".join(sorted(set(checks)))
    attrs["title"] = f"{note}; {attrs['title']}" if attrs.get("title") else note
    return Cell(cell.text, cell.sort, cell.is_text, attrs, cell.html)


def _wcar_note(data: ReportData, run: Run, col: NumberColumn) -> dict[str, str]:
    """Tooltip and class of a WCAR cell: the attacks it covers; ``partial`` when one is missing."""
    if col.metric != "wcar" or col.level is None:
        return {}
    cover = data.wcar_coverage
    hit = cover[
        (cover["dataset"] == run[0])
        & (cover["arch"] == run[1])
        & (cover["technique"] == run[2])
        & (cover["noise"] == col.noise)
        & (cover["level"] == col.level)
    ]
    if not len(hit):
        return {}
    row = hit.iloc[0]
    note = {"title": f"worst case over {row['attacks']}"}
    if row["missing"]:
        note["title"] += f"; partial: {row['missing']} not run at this eps"
        note["class"] = "partial"
    return note


def _guard_checks(guards: dict[str, list[str]], col: NumberColumn) -> list[str]:
    if col.guard is None:
        return []
    if col.guard == "clean":
        return guards.get("clean", [])
    if col.guard == "wcar":  # worst case over every attack: any attack's failure counts
        return [c for key, checks in guards.items() if key != "clean" for c in checks]
    return guards.get(col.guard, []) + guards.get(sanity.ALL, [])


def leaderboard_table(data: ReportData) -> tuple[list[Column], list[list[Cell]], list[Run]]:
    """Columns, rows and the run of each row."""
    numbers = number_columns(data)
    counts = sanity.status(data)
    guards = sanity.failed_guards(data)
    columns = [*TEXT_COLUMNS, *(c.column for c in numbers)]
    if counts:
        columns.append(
            Column(
                "sanity checks",
                "evaluation sanity checks passed / run; click to see them",
                "sanity",
                True,
            )
        )
    rows = []
    for run in data.runs:
        family = family_name(data.arch_families.get(run[1], "unknown"))
        row = [text_cell(run[0]), text_cell(run[1]), text_cell(run[2]), text_cell(family)]
        for col in numbers:
            entry = data.entry(run, col.family, col.noise, col.level, col.metric)
            attrs = {"data-metric": col.metric_key(), **_wcar_note(data, run, col)}
            if entry is not None:
                attrs["data-value"] = repr(float(entry.value))
            cell = entry_cell(entry, col.kind, **attrs)
            row.append(_flag(cell, _guard_checks(guards.get(run, {}), col)))
        if counts:
            if run in counts:
                ok, total = counts[run]
                cls = "fail" if ok < total else "pass"
                link = f'<a class="{cls}" href="#{sanity.run_anchor(data, run)}">{ok}/{total}</a>'
                row.append(Cell(f"{ok}/{total}", repr(ok / total), True, {}, link))
            else:
                row.append(text_cell("none"))
        rows.append(row)
    return columns, rows, list(data.runs)


def leaderboard_html(data: ReportData) -> str:
    """The sortable leaderboard table."""
    columns, rows, runs = leaderboard_table(data)
    attrs = [{"data-run": "/".join(run)} for run in runs]
    return render_table(columns, rows, table_id="leaderboard-table", row_attrs=attrs)


ABBREVIATIONS = (
    (
        "MACs",
        "multiply-accumulates of one forward pass on one image (convolutions, linear "
        "layers and attention products)",
    ),
    (
        "WCAR",
        "worst-case adversarial robustness: among clean-correct images evaluated by every "
        "attack of the norm run at that eps, the share correct under all of them (the "
        "WCAR coverage table under Adversarial noise lists the attacks and n per eps; a "
        "dotted cell is partial: an attack run at other eps is missing there)",
    ),
    (
        "[low, high]",
        "the 95 % interval of the number above it: Wilson over its n distinct images for a "
        "proportion, a seeded bootstrap over images for a mean over corruptions or variants "
        "(hover for n; docs/metrics.md)",
    ),
    (
        "AutoAttack",
        "the standard AutoAttack ensemble (APGD-CE, APGD-T, FAB-T, Square) or the "
        "configured subset",
    ),
    (
        "mCE",
        "mean corruption error normalised by the dataset's baseline model (Hendrycks & "
        "Dietterich); relative mCE subtracts clean error first; unnorm. is RobustART's raw mean "
        "error",
    ),
    (
        "mFP / mFR",
        "mean flip probability along perturbation sequences / the same relative to "
        "the baseline model (ImageNet-P)",
    ),
    (
        "NSD",
        "minus the standard deviation of accuracy over decoder and resize variants "
        "(ImageNet-S); higher is better",
    ),
)


def abbreviations_html() -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in ABBREVIATIONS)
    return f'<dl class="abbr">{items}</dl>'


def wcar_coverage_html(data: ReportData) -> str:
    """Per dataset, norm and eps: the attacks WCAR covers, those missing there, and its n (the
    clean-correct images every covered attack evaluated; min-max over models)."""
    cover = data.wcar_coverage
    if not len(cover):
        return ""
    rows = []
    keys = ["dataset", "noise", "level", "attacks", "missing"]
    for (dataset, noise, level, attacks, missing), group in cover.groupby(keys, sort=True):
        n = group["n"].astype(int)
        per_model = ", ".join(
            f"{a}/{t}: {k}" for a, t, k in zip(group["arch"], group["technique"], n, strict=True)
        )
        shown = str(n.min()) if n.min() == n.max() else f"{n.min()}–{n.max()}"
        rows.append(
            [
                text_cell(str(dataset)),
                text_cell(data_norm_label(str(noise))),
                Cell(format_level(float(level)), repr(float(level))),
                text_cell(str(attacks)),
                text_cell(str(missing) or "none", **({"class": "fail"} if missing else {})),
                Cell(shown, repr(float(n.min())), False, {"title": per_model}),
            ]
        )
    columns = [
        Column("dataset", key="dataset", is_text=True),
        Column("norm", is_text=True),
        Column("eps"),
        Column("attacks covered", "attacks with robust accuracy at this eps", is_text=True),
        Column(
            "missing here",
            "attacks of this norm evaluated at other eps but not this one: WCAR is optimistic",
            is_text=True,
        ),
        Column(
            "n (images)", "clean-correct images every covered attack evaluated; hover: per model"
        ),
    ]
    return render_table(columns, rows, sortable=False, table_id="wcar-coverage")


def data_norm_label(noise: str) -> str:
    """``L-inf`` / ``L2`` / ``L1`` of a WCAR noise name."""
    from robustlab.metrics.adversarial import wcar_norm

    return {"linf": "L-inf", "l2": "L2", "l1": "L1"}.get(wcar_norm(noise), wcar_norm(noise))
