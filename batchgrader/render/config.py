"""The tables of ``config show`` (each setting and where it came from) and ``config path``."""

from __future__ import annotations

import json

from batchgrader.config_report import ConfigReport, PathReport
from batchgrader.render.fit import FitTable, Long


def settings_table(report: ConfigReport) -> FitTable:
    table = FitTable("Effective settings", shrink=("source", "value"))
    table.column("setting", style="bold")
    table.column("value", "id")
    table.column("source", "path")
    for row in report.settings:
        value = (
            "-"
            if row.value is None
            else (json.dumps(row.value) if isinstance(row.value, dict) else str(row.value))
        )
        style = "dim" if row.source == "default" else "green"
        source = row.source if row.source_detail is None else f"{row.source} ({row.source_detail})"
        table.row(row.key, Long(value), Long(source, short=row.source, style=style))
    return table


def paths_table(report: PathReport) -> FitTable:
    table = FitTable("Files and folders", shrink=("path",))
    table.column("what", style="bold")
    table.column("exists")
    table.column("path", "path")
    for row in report.paths:
        table.row(row.name, "yes" if row.exists else "no", str(row.path))
    return table
