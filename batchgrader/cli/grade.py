"""``batchgrader grade``."""

from __future__ import annotations

from typing import Annotated

import typer

from batchgrader import datafiles
from batchgrader.cli._context import AppContext
from batchgrader.cli._options import (
    AllowUnpricedOption,
    ColumnOption,
    EndpointOption,
    ExamplesOption,
    FailOnEmptyOption,
    FilesArgument,
    FormatOption,
    JsonOption,
    MaxTokensOption,
    ModelOption,
    PromptOption,
    SchemaOption,
    request_overrides,
)
from batchgrader.planning import dry_run
from batchgrader.render import tables
from batchgrader.requestspec import request_spec


def grade(
    ctx: typer.Context,
    files: FilesArgument = None,
    column: ColumnOption = None,
    prompt: PromptOption = None,
    examples: ExamplesOption = None,
    model: ModelOption = None,
    endpoint: EndpointOption = None,
    max_tokens: MaxTokensOption = None,
    schema: SchemaOption = None,
    input_format: FormatOption = None,
    fail_on_empty: FailOnEmptyOption = False,
    allow_unpriced: AllowUnpricedOption = False,
    dry_run_flag: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Plan, count and write the request files; submit nothing (no API key needed).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Grade every row of the input files with the judge through the Batch API."""
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
        )
    )
    settings = loaded.settings
    fmt = datafiles.parse_format(input_format)
    paths = datafiles.discover(files or [], settings.paths.input_dir, fmt)
    spec = request_spec(
        settings,
        schema_file=schema,
        fmt=fmt,
        fail_on_empty=fail_on_empty,
        allow_unpriced=allow_unpriced,
    )
    if dry_run_flag:
        app.note("[bold]Dry run: nothing is submitted, no API key is used.[/]")
        app.emit(dry_run(paths, spec, settings), tables.dry_run_table)
        return
