"""`bench paper`'s table: our row beside the published rows of SAMIC's Table 1, as Markdown
(``table1.md``) and as an HTML report (``report.html``), each column linking to its runs'
reports.

Both read the ``scores.json`` that :mod:`samic_vos.pipelines.bench_paper` writes: ``label`` (our
row's name) and per column ``title``, ``metric``, ``status`` (``"scored"`` or why not), ``ours``
and ``published`` (x 100), ``reports`` (paths relative to the table) and, for fold columns,
``folds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from samic_vos.reports.html import Report

TITLE = "samic-vos bench paper: SAMIC's Table 1 (1-shot mIoU; DAVIS J&F-Mean; x 100)"


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _rows(scores: Mapping[str, Any]) -> list[list[str]]:
    """Our row (the status where a column was not scored), then one row per published method."""
    columns = scores["columns"].values()
    ours = [_figure(c["ours"]) if c["status"] == "scored" else c["status"] for c in columns]
    methods = list(next(iter(columns))["published"])
    rows = [[scores["label"], *ours]]
    for method in methods:
        rows.append([method, *(_figure(c["published"].get(method)) for c in columns)])
    return rows


def _folds_note(column: Mapping[str, Any]) -> str:
    folds = ", ".join(f"fold {f} {v:.1f}" for f, v in column.get("folds", {}).items())
    return f"{column['title']}: mean of {folds}" if folds else ""


def paper_markdown(scores: Mapping[str, Any]) -> str:
    """``table1.md``: a Markdown table, each column's title linking to its (first) report."""
    header = ["method"]
    for column in scores["columns"].values():
        reports = column["reports"]
        header.append(f"[{column['title']}]({reports[0]})" if reports else column["title"])
    lines = [f"# {TITLE}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + " --- |" * len(header))
    lines += ["| " + " | ".join(row) + " |" for row in _rows(scores)]
    bullets = []
    for column in scores["columns"].values():
        if len(column["reports"]) > 1:
            links = ", ".join(f"[fold {k}]({r})" for k, r in enumerate(column["reports"]))
            bullets.append(f"- {_folds_note(column)} ({links})")
    lines += ["", *bullets] if bullets else []
    return "\n".join(lines) + "\n"


def paper_report(scores: Mapping[str, Any]) -> Report:
    """``report.html``: the table (our row first, the published rows greyed) and the links to
    every run's own report."""
    report = Report(TITLE)
    titles = [c["title"] for c in scores["columns"].values()]
    rows = _rows(scores)
    secondary = [False] + [True] * (len(rows) - 1)
    report.table(["method", *titles], rows, secondary=secondary, table_id="table1")
    report.heading("Each column's own report")
    for column in scores["columns"].values():
        if column["reports"]:
            names = [r.rsplit("/", 1)[0] for r in column["reports"]]
            report.links(f"{column['title']}:", list(zip(names, column["reports"], strict=True)))
            if column.get("folds"):
                report.paragraph(_folds_note(column))
        else:
            report.paragraph(f"{column['title']}: {column['status']}")
    return report
