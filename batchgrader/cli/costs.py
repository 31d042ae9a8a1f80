"""``batchgrader costs``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import JsonOption
from batchgrader.errors import UsageError
from batchgrader.money.grouping import GroupBy

_WHEN = (
    "a duration back from now (30m, 24h, 7d, 4w) or a date or time "
    "(2026-11-01, 2026-11-01T09:30:00+02:00; naive = UTC)"
)


def costs(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="WHEN", help=f"Start of the window: {_WHEN}.", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="WHEN",
            help=f"End of the window (exclusive; a bare date includes that day): {_WHEN}.",
            show_default=False,
        ),
    ] = None,
    by: Annotated[
        GroupBy,
        typer.Option(
            "--by", help="Break the window down by model, provider, UTC day, input file or job."
        ),
    ] = "model",
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", metavar="MODEL", help="Only this model's usage.", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
    csv_output: Annotated[
        bool, typer.Option("--csv", help="Print the figures as CSV on stdout.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            metavar="FILE.jsonl",
            help="Write the usage events (of the window and model) as JSONL to this file.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --export file.")
    ] = False,
) -> None:
    """Tokens and dollars from the local ledger: all time, today, the last 7 days (or
    --since/--until), by model, provider, day, file or job. Collected (spent) and in-flight
    (committed) usage are shown apart."""
    from batchgrader import paths
    from batchgrader.money import costs as core
    from batchgrader.money import export as costs_export
    from batchgrader.render.costs import costs_table, export_note

    app = AppContext.of(ctx)
    app.json_mode = json_output
    if json_output and csv_output:
        raise UsageError("--json and --csv are alternatives: pass one of them.")
    settings = app.load().settings
    now = datetime.now(UTC)
    start, stop = core.parse_window(since, until, now=now)
    ledger_path = paths.ledger_db(settings.state_dir())
    if export is not None:
        events = core.select(core.read_events(ledger_path), since=start, until=stop, model=model)
        app.emit(costs_export.export_events(events, export, overwrite=overwrite), export_note)
        return
    report = core.load_report(
        ledger_path,
        now=now,
        since=start,
        until=stop,
        by=by,
        model=model,
        name=core.window_label(since, until),
    )
    if csv_output:
        typer.echo(costs_export.report_csv(report), nl=False)
        return
    app.emit(report, costs_table)
