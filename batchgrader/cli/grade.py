"""``batchgrader grade``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    YesOption,
    request_overrides,
)
from batchgrader.errors import UsageError


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
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the graded file here.")
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option("--output-format", help="Format of the graded file (default: the input's)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing graded file.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start a new job even if this one ran before.")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Submit the batches and exit; resume later to collect."),
    ] = False,
    continue_on_failure: Annotated[
        bool,
        typer.Option(
            "--continue-on-failure",
            help="Run every chunk even after one fails (run.halt_on_chunk_failure=false).",
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Resend only the rows whose error a retry can fix "
            "(--retry-failed=all: every row without a score).",
        ),
    ] = False,
    retry_all: Annotated[bool, typer.Option("--retry-all-errors", hidden=True)] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Stop (exit 2) if another process is running this job."),
    ] = False,
    dry_run_flag: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Plan, count and write the request files; submit nothing (no API key needed).",
        ),
    ] = False,
    max_cost: Annotated[
        str | None,
        typer.Option(
            "--max-cost",
            metavar="USD",
            help="Refuse a run whose worst-case cost exceeds this (budget.max_cost_usd).",
            show_default=False,
        ),
    ] = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Grade every row of the input files with the judge through the Batch API."""
    from batchgrader.cli._run import finish, open_ledger, session
    from batchgrader.data import formats, reading
    from batchgrader.execution.resubmit import RetryScope
    from batchgrader.execution.run import GradeOptions, Grader
    from batchgrader.planning.plans import dry_run
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
        | {"run.halt_on_chunk_failure": False if continue_on_failure else None}
        | {"budget.max_cost_usd": max_cost.strip().removeprefix("$") if max_cost else None}
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
    if dry_run_flag:
        app.note("[bold]Dry run: nothing is submitted, no API key is used.[/]")
        app.emit(dry_run(paths, spec, settings), tables.dry_run_table)
        return
    options = GradeOptions(
        output=output,
        output_format=formats.parse_format(output_format),
        overwrite=overwrite,
        force=force,
        detach=detach,
        retry=(RetryScope.ALL if retry_all else RetryScope.FAILED) if retry_failed else None,
        wait=not no_wait,
        yes=yes,
    )
    if output is not None and len(paths) > 1:
        raise UsageError("--output names one file, but several inputs were given.")
    with open_ledger(settings) as ledger, session(app, settings, spec, ledger) as opened:
        report = Grader(opened).grade(paths, options)
    if detach and not json_output:
        app.note(f"Detached. To collect: batchgrader jobs resume {report.files[-1].job_id}")
    finish(app, report, retry="batchgrader grade --retry-failed (same arguments)")
