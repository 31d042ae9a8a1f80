"""``batchgrader split``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import (
    ColumnOption,
    EndpointOption,
    ExamplesOption,
    FilesArgument,
    FormatOption,
    JsonOption,
    MaxTokensOption,
    ModelOption,
    PromptOption,
    ProviderOption,
    request_overrides,
)


def split(
    ctx: typer.Context,
    files: FilesArgument = None,
    rows: Annotated[
        int | None,
        typer.Option("--rows", min=1, metavar="N", help="Most rows per part, blank ones included."),
    ] = None,
    tokens: Annotated[
        int | None,
        typer.Option(
            "--tokens",
            min=1,
            metavar="N",
            help="Most request tokens per part, counted as sent (as by count). With neither "
            "--rows nor --tokens: chunking.split_token_limit and split_row_limit.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            metavar="DIR",
            help="Folder for the parts (default: {stem}_parts/ beside each input).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace part files that already exist.")
    ] = False,
    column: ColumnOption = None,
    prompt: PromptOption = None,
    examples: ExamplesOption = None,
    model: ModelOption = None,
    provider: ProviderOption = None,
    endpoint: EndpointOption = None,
    max_tokens: MaxTokensOption = None,
    input_format: FormatOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and report the parts; write nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Write each input as parts ({stem}_part{N}{ext}, same format) within row and token limits."""
    from batchgrader.data import formats, reading
    from batchgrader.planning.spec import request_spec
    from batchgrader.planning.splitting import split_files, split_limits
    from batchgrader.render.planning import split_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    loaded = app.load(
        request_overrides(
            column=column,
            prompt=prompt,
            examples=examples,
            model=model,
            endpoint=endpoint,
            max_tokens=max_tokens,
            provider=provider,
        )
    )
    settings = loaded.settings
    fmt = formats.parse_format(input_format)
    paths = reading.discover(files or [], settings.paths.input_dir, fmt)
    limits = split_limits(settings.chunking, rows=rows, tokens=tokens)
    # Rows alone need no prompt, graded column or tokenizer: only a token limit does.
    spec = None if limits.tokens is None else request_spec(settings, fmt=fmt, allow_unpriced=True)
    if dry_run:
        app.note("[bold]Dry run: the parts are planned, nothing is written.[/]")
    report = split_files(
        paths, spec, limits, out_dir=out_dir, overwrite=overwrite, dry_run=dry_run, fmt=fmt
    )
    app.emit(report, split_table)
