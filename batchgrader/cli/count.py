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
    PilotOption,
    PromptOption,
    ProviderOption,
    SchemaOption,
    YesOption,
    request_overrides,
)


def count(
    ctx: typer.Context,
    files: FilesArgument = None,
    column: ColumnOption = None,
    prompt: PromptOption = None,
    examples: ExamplesOption = None,
    model: ModelOption = None,
    provider: ProviderOption = None,
    endpoint: EndpointOption = None,
    max_tokens: MaxTokensOption = None,
    schema: SchemaOption = None,
    input_format: FormatOption = None,
    expected_output_tokens: ExpectedOutputOption = None,
    fail_on_empty: FailOnEmptyOption = False,
    allow_unpriced: AllowUnpricedOption = False,
    pilot: PilotOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Count the exact request tokens of each file and estimate the cost.

    No requests are made, unless --pilot N sends N sampled rows to measure the answers.
    """
    from batchgrader.cli._run import run_pilots
    from batchgrader.data import formats, reading
    from batchgrader.execution.pilot import PilotedCount
    from batchgrader.planning.estimate import count_files
    from batchgrader.planning.spec import request_spec
    from batchgrader.render.planning import count_table, piloted_count

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
        | {"request.expected_output_tokens": expected_output_tokens}
        | {"run.pilot_rows": pilot}
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
    if spec.provider.name == "anthropic" and settings.anthropic.key is not None:
        app.note("[bold]Counting with Anthropic's free count_tokens endpoint: nothing is spent.[/]")
    elif not settings.run.pilot_rows:
        app.note("[bold]Counting only: no requests are made, nothing is spent.[/]")
    report = count_files(paths, spec, settings.request.expected_output_tokens)
    if settings.run.pilot_rows:
        reports = run_pilots(app, settings, spec, paths, yes=yes)
        app.emit(PilotedCount(**report.model_dump(), pilot=reports), piloted_count)
        return
    app.emit(report, count_table)
