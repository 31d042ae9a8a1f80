"""``batchgrader count``."""

from __future__ import annotations

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import (
    AllowUnpricedOption,
    ColumnOption,
    EndpointOption,
    ExamplesOption,
    ExpectedOutputOption,
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


def count(
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
    expected_output_tokens: ExpectedOutputOption = None,
    fail_on_empty: FailOnEmptyOption = False,
    allow_unpriced: AllowUnpricedOption = False,
    json_output: JsonOption = False,
) -> None:
    """Count the exact request tokens of each file and estimate the cost. No requests are made."""
    from batchgrader.data import formats, reading
    from batchgrader.planning.estimate import count_files
    from batchgrader.planning.spec import request_spec
    from batchgrader.render import tables

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
        | {"request.expected_output_tokens": expected_output_tokens}
    )
    settings = loaded.settings
    fmt = formats.parse_format(input_format)
    paths = reading.discover(files or [], settings.paths.input_dir, fmt)
    spec = request_spec(
        settings,
        schema_file=schema,
        fmt=fmt,
        fail_on_empty=fail_on_empty,
        allow_unpriced=allow_unpriced,
    )
    app.note("[bold]Counting only: no requests are made, nothing is spent.[/]")
    report = count_files(paths, spec, settings.request.expected_output_tokens)
    app.emit(report, tables.count_table)
