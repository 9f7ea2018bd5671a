"""The provenance footer: revision, parameters, library versions, dataset checksums, subset
sizes, eps levels and how many test images each evaluation used (the ``n`` column)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from robustlab.metrics.natural import CORRUPTION_SETS
from robustlab.report.data import ReportData
from robustlab.report.format import format_level
from robustlab.report.panels import corruption_set_label
from robustlab.report.tables import Column, render_table, text_cell


def _kv(items: Mapping[str, str]) -> str:
    rows = "".join(
        f"<tr><th class=text>{escape(k)}</th><td class=text>{escape(v)}</td></tr>"
        for k, v in items.items()
    )
    return f"<table class=kv>{rows}</table>"


def _values(values: set) -> str:
    return ", ".join(str(v) for v in sorted(values)) or "unknown"


def dataset_rows(data: ReportData) -> str:
    """Per dataset: test table size, image shape, checksums, training subset sizes."""
    columns = [
        Column("dataset", is_text=True),
        Column("test images", is_text=True),
        Column("image (HxWxC), classes", is_text=True),
        Column("test table source checksum (sha256)", is_text=True),
        Column(
            "train / val images", "training and validation images of the model cards", is_text=True
        ),
        Column("training data checksum (model cards)", is_text=True),
    ]
    rows = []
    for dataset in sorted(set(data.datasets) | set(data.datasets_present)):
        info = data.datasets.get(dataset)
        cards = [c for run, c in data.cards.items() if run[0] == dataset]
        shape = (
            f"{info.height}x{info.width}x{info.channels}, {info.classes} classes"
            if info is not None
            else "unknown (no test table given)"
        )
        rows.append(
            [
                text_cell(dataset),
                text_cell(str(info.rows) if info is not None else "unknown"),
                text_cell(shape),
                text_cell(info.source_checksum if info is not None else "unknown"),
                text_cell(
                    f"{_values({c.get('train_size') for c in cards} - {None})} / "
                    f"{_values({c.get('val_size') for c in cards} - {None})}"
                ),
                text_cell(_values({c.get("source_checksum") for c in cards} - {None})),
            ]
        )
    return render_table(columns, rows, sortable=False)


def _corruption_count(names: set[str]) -> str:
    """``19 corruptions (15 of 15 ImageNet-C, 4 of 4 ImageNet-C extra)``."""
    parts = [
        f"{len(names & set(members))} of {len(members)} {corruption_set_label(set_name)}"
        for set_name, members in CORRUPTION_SETS.items()
        if names & set(members)
    ]
    return f"{len(names)} corruptions" + (f" ({', '.join(parts)})" if parts else "")


def evaluation_rows(data: ReportData) -> str:
    """Per (dataset, evaluation): levels and the number of test images behind the values."""
    columns = [
        Column("dataset", is_text=True),
        Column("evaluation", is_text=True),
        Column("levels (eps or severity)", is_text=True),
        Column("test images per value (n)", is_text=True),
        Column(
            "model passes", "forward / backward passes, summed over models and eps", is_text=True
        ),
    ]
    rows = []
    for dataset in data.datasets_present:
        for attack in data.attacks(dataset):
            mine = data.rows(dataset=dataset, family="adversarial", noise=attack)
            robust = mine[mine["metric"] == "robust_accuracy"]
            fwd = mine.loc[mine["metric"] == "forward_passes", "value"].sum()
            bwd = mine.loc[mine["metric"] == "backward_passes", "value"].sum()
            rows.append(
                [
                    text_cell(dataset),
                    text_cell(f"attack {attack} ({data.norm_label(attack)})"),
                    text_cell(", ".join(format_level(e) for e in data.eps_levels(dataset, attack))),
                    text_cell(_values(set(robust["n"].astype(int)))),
                    text_cell(f"{fwd:,.0f} / {bwd:,.0f}"),
                ]
            )
        nat = data.rows(dataset=dataset, family="natural", metric="accuracy")
        nat = nat[nat["level"].notna()]
        if len(nat):
            rows.append(
                [
                    text_cell(dataset),
                    text_cell(_corruption_count(set(nat["noise"].astype(str)))),
                    text_cell(", ".join(format_level(s) for s in sorted(set(nat["level"])))),
                    text_cell(_values(set(nat["n"].astype(int)))),
                    text_cell("–"),
                ]
            )
        flips = data.rows(dataset=dataset, metric="flip_probability")
        if len(flips):
            rows.append(
                [
                    text_cell(dataset),
                    text_cell(f"{flips['noise'].nunique()} perturbation sequences"),
                    text_cell("–"),
                    text_cell(_values(set(flips["n"].astype(int)))),
                    text_cell("–"),
                ]
            )
        system = data.rows(dataset=dataset, family="system", metric="accuracy")
        if len(system):
            rows.append(
                [
                    text_cell(dataset),
                    text_cell(f"{system['noise'].nunique()} system variants"),
                    text_cell("–"),
                    text_cell(_values(set(system["n"].astype(int)))),
                    text_cell("–"),
                ]
            )
        transfer = data.transfer
        if transfer is not None and not transfer.empty:
            part = transfer[transfer["dataset"] == dataset]
            for attack, group in part.groupby("attack", sort=True):
                rows.append(
                    [
                        text_cell(dataset),
                        text_cell(f"transfer {attack}"),
                        text_cell(", ".join(format_level(e) for e in sorted(set(group["eps"])))),
                        text_cell(
                            f"{int(group['n'].min())}-{int(group['n'].max())} "
                            "(images both models classify correctly)"
                        ),
                        text_cell("–"),
                    ]
                )
    return render_table(columns, rows, sortable=False)


def provenance_html(
    data: ReportData,
    provenance: Mapping[str, str],
    versions: Mapping[str, str],
    params_text: str | None,
) -> str:
    """The footer's content."""
    parts = [
        "<h3>Run</h3>",
        _kv(dict(sorted(provenance.items())) or {"revision": "not given"}),
        "<h3>Library versions (report stage)</h3>",
        _kv(dict(sorted(versions.items()))),
        "<h3>Datasets</h3>",
        dataset_rows(data),
        "<h3>Evaluations</h3>",
        evaluation_rows(data),
    ]
    if params_text is not None:
        parts.append(
            f"<details><summary>parameters file</summary><pre>{escape(params_text)}</pre></details>"
        )
    parts.append(
        "<p>Generated from the pipeline's tables and the figures above; identical inputs give "
        "an identical page (no timestamp).</p>"
    )
    return "\n".join(parts)
