"""``batchgrader config show|path``."""

from __future__ import annotations

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import JsonOption

config_app = typer.Typer(
    no_args_is_help=True, help="Show the effective settings and the files batchgrader reads."
)


@config_app.command("show")
def show(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Print every setting, its value and where it came from (secrets masked)."""
    from batchgrader.config_report import config_report
    from batchgrader.render.config import settings_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    loaded = app.load()
    app.emit(config_report(loaded), settings_table)


@config_app.command("path")
def path(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Print the config files read, the state, ledger and log folders, and the tokenizer cache."""
    from batchgrader.config_report import path_report
    from batchgrader.render.config import paths_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    loaded = app.load()
    app.emit(path_report(loaded), paths_table)
