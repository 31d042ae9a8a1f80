"""The ``batchgrader`` command line: registration, global options, the error boundary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._errors import BoundaryGroup, handle_sigterm
from batchgrader.cli._options import DebugOption, QuietOption, VerboseOption
from batchgrader.cli.config import config_app
from batchgrader.cli.costs import costs
from batchgrader.cli.count import count
from batchgrader.cli.docs import docs
from batchgrader.cli.grade import grade
from batchgrader.cli.jobs import jobs_app
from batchgrader.cli.report import report
from batchgrader.cli.split import split
from batchgrader.cli.tokenizer import tokenizer_app

app = typer.Typer(
    name="batchgrader",
    cls=BoundaryGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    help="Grade, score or classify big files of texts with an LLM judge "
    "through the OpenAI Batch API.",
    epilog="Docs: batchgrader docs (the list), batchgrader docs TOPIC (one). Exit codes: 0 ok, "
    "1 rows or batches failed, 2 bad usage or input (nothing submitted), 130 interrupted "
    "(Ctrl-C), 143 terminated (SIGTERM).",
)
app.command()(grade)
app.command()(count)
app.command()(costs)
app.command()(split)
app.command()(report)
app.add_typer(config_app, name="config")
app.add_typer(jobs_app, name="jobs")
app.command()(docs)
app.add_typer(tokenizer_app, name="tokenizer")


def _version(value: bool) -> None:
    if value:
        from batchgrader import __version__

        typer.echo(f"batchgrader {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Read this settings file instead of ./batchgrader.toml.",
        ),
    ] = None,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
    debug: DebugOption = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Grade, score or classify big files of texts with an LLM judge."""
    del version, verbose, quiet, debug  # set on the AppContext by their callbacks
    AppContext.of(ctx).config_file = config


#: polars' streaming CSV reader reads a local file ahead in 32 MB pieces, several at a
#: time: ~400 MB of a big file in memory. 4 MB pieces read as fast with a fraction of
#: it (`count` of a 1.3 GB file: 600 MB peak RSS down to 390 MB; docs/benchmarks.md).
#: polars reads the variable once, at its first CSV read; a value the user set wins.
CSV_READ_AHEAD = ("POLARS_CSV_CHUNK_SIZE", str(4 * 1024 * 1024))


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault(*CSV_READ_AHEAD)
    handle_sigterm()
    app()
