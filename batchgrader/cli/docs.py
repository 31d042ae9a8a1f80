"""``batchgrader docs [TOPIC]``."""

from __future__ import annotations

from typing import Annotated

import typer

from batchgrader.cli._context import AppContext


def docs(
    ctx: typer.Context,
    topic: Annotated[
        str | None,
        typer.Argument(
            metavar="TOPIC", help="The page to print (default: list the pages).", show_default=False
        ),
    ] = None,
) -> None:
    """Print the documentation that comes with batchgrader.

    Without TOPIC, the list of pages; with it, that page
    (plain text, paged on a terminal)."""
    from rich.text import Text

    from batchgrader import manual
    from batchgrader.cli._context import show
    from batchgrader.render.fit import FitTable

    app = AppContext.of(ctx)
    if topic is None:
        table = FitTable("Documentation: batchgrader docs TOPIC prints one page")
        table.column("topic", "id")
        table.column("title", "wrap")
        for t in manual.topics():
            table.row(t.name, t.title)
        show(app.out, table)
        return
    text = manual.read(topic)
    if app.out.is_terminal:
        with app.out.pager():
            app.out.print(Text(text), crop=False)
    else:
        typer.echo(text, nl=not text.endswith("\n"))
