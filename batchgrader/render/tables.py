"""Pure renderers: a result model in, a rich renderable out."""

from __future__ import annotations

import json

from rich.table import Table
from rich.text import Text

from batchgrader.config_report import ConfigReport, PathReport


def settings_table(report: ConfigReport) -> Table:
    table = Table(title="Effective settings", title_justify="left")
    table.add_column("setting", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for row in report.settings:
        value = (
            "-"
            if row.value is None
            else (json.dumps(row.value) if isinstance(row.value, dict) else str(row.value))
        )
        source = row.source if row.source_detail is None else f"{row.source} ({row.source_detail})"
        style = "dim" if row.source == "default" else "green"
        table.add_row(row.key, Text(value), Text(source, style=style))
    return table


def paths_table(report: PathReport) -> Table:
    table = Table(title="Files and folders", title_justify="left")
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("exists")
    for row in report.paths:
        table.add_row(Text(row.name), Text(str(row.path)), "yes" if row.exists else "no")
    return table
