"""``batchgrader tokenizer fetch|status|path``: tiktoken's encoding files, for offline use."""

from __future__ import annotations

from typing import Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import JsonOption

tokenizer_app = typer.Typer(
    no_args_is_help=True,
    help="Download tiktoken's encodings once (for offline use) and show where they are.",
)


@tokenizer_app.command("fetch")
def fetch(
    ctx: typer.Context,
    encodings: Annotated[
        list[str] | None,
        typer.Option(
            "--encoding",
            "-e",
            metavar="NAME",
            help="Only this encoding (repeatable; default: o200k_base and cl100k_base).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Download the encodings count, split and grade need into the tokenizer cache folder.

    Encodings already there are not downloaded again. Without network here: fetch on a
    machine that has it and copy the folder ('batchgrader tokenizer path') over.
    """
    from batchgrader.prompting import tokenizer_cache
    from batchgrader.render.tokenizer import tokenizer_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    app.emit(tokenizer_cache.fetch(encodings or []), tokenizer_table)


@tokenizer_app.command("status")
def status(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show the tokenizer cache folder, who chose it, and which encodings it holds."""
    from batchgrader.prompting import tokenizer_cache
    from batchgrader.render.tokenizer import tokenizer_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    app.emit(tokenizer_cache.status(), tokenizer_table)


@tokenizer_app.command("path")
def path() -> None:
    """Print the tokenizer cache folder alone (for scripts: copy it to another machine)."""
    from batchgrader import paths

    typer.echo(str(paths.tokenizer_cache_dir()))
