"""CLAT's tables: the top-5 criticality indices per model (Table 3) and the
trainable parameters during CLAT (Table 6)."""

from __future__ import annotations

from html import escape

from robustlab.report.data import ReportData, Run
from robustlab.report.tables import Cell, Column, number_cell, render_table, text_cell

TOP = 5


def last_selection(frame):
    """The rows of the last (re)selection in a criticality table."""
    return frame[frame["epoch"] == frame["epoch"].max()]


def top_indices(data: ReportData, run: Run, top: int = TOP) -> Cell:
    """The ``top`` most critical layer indices of the last selection, selected ones bold."""
    frame = data.criticality.get(run)
    if frame is None or frame.empty:
        return Cell("–", "", True)
    rows = (
        last_selection(frame)
        .sort_values(["criticality", "layer_index"], ascending=[False, True])
        .head(top)
    )
    parts, texts = [], []
    for r in rows.itertuples(index=False):
        tip = f"layer {r.layer_index}: {r.layer_name}, criticality {r.criticality:.4g}"
        item = escape(str(int(r.layer_index)))
        if bool(r.selected):
            item = f"<b>{item}</b>"
        parts.append(f'<span title="{escape(tip)}">{item}</span>')
        texts.append(str(int(r.layer_index)))
    epoch = int(rows["epoch"].iloc[0])
    html = ", ".join(parts) + f' <span class="muted">(epoch {epoch})</span>'
    return Cell(", ".join(texts), ", ".join(texts), True, {}, html)


def criticality_html(data: ReportData) -> str:
    """Table 3: models as rows, datasets as columns."""
    runs = data.clat_runs()
    datasets = sorted({r[0] for r in runs})
    models = sorted({(r[1], r[2]) for r in runs})
    columns = [Column("model", is_text=True)] + [
        Column(
            f"{d}: top-{TOP} critical layers",
            "1-based forward order of Conv2d/Linear layers; bold: fine-tuned by CLAT",
            is_text=True,
        )
        for d in datasets
    ]
    rows = [
        [text_cell(f"{a}/{t}"), *(top_indices(data, (d, a, t)) for d in datasets)]
        for a, t in models
    ]
    return render_table(columns, rows, sortable=False, table_id="clat-criticality")


def trainable_html(data: ReportData) -> str:
    """Table 6: total and CLAT-trainable parameters, share used, the CLAT settings."""
    columns = [
        Column("dataset", is_text=True),
        Column("network", is_text=True),
        Column("total params"),
        Column("trainable during CLAT"),
        Column("% used"),
        Column("fine-tuned layers", is_text=True),
        Column("CLAT settings", "from the model card", is_text=True),
    ]
    rows = []
    for run in data.clat_runs():
        total = data.value(run, "complexity", "", None, "params")
        trainable = data.value(run, "complexity", "", None, "trainable_params")
        share = None if not total or trainable is None else 100.0 * trainable / total
        card = data.cards.get(run, {})
        cfg = card.get("clat_config", card.get("technique_config", {}))
        settings = ", ".join(
            f"{k} {cfg[k]}"
            for k in ("lam", "k", "epochs", "selection", "reselect_every", "eps", "steps", "fast")
            if k in cfg
        )
        settings += (
            f"; pretrained {card['pretrain_epoch']} epochs" if "pretrain_epoch" in card else ""
        )
        names = card.get("selected_layer_names") or []
        layers = card.get("selected_layers") or []
        fine = ", ".join(f"{i} ({n})" for i, n in zip(layers, names, strict=False)) or "–"
        rows.append(
            [
                text_cell(run[0]),
                text_cell(f"{run[1]}/{run[2]}"),
                number_cell(total, "count"),
                number_cell(trainable, "count"),
                Cell(
                    "–" if share is None else f"{share:.1f}%", "" if share is None else repr(share)
                ),
                text_cell(fine, **{"class": "wrap"}),
                text_cell(settings.replace("lam", "λ") or "–", **{"class": "wrap"}),
            ]
        )
    return render_table(columns, rows, table_id="clat-trainable")
