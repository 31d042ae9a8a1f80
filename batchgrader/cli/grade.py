"""``batchgrader grade``."""

from __future__ import annotations

from pathlib import Path
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
    YesOption,
    request_overrides,
)
from batchgrader.cli._run import run_grade
from batchgrader.errors import OutputExistsError, RunFailed, UsageError
from batchgrader.grading import GradeOptions
from batchgrader.planning import dry_run
from batchgrader.render import tables
from batchgrader.render.report import labelled_summary
from batchgrader.report.run import check_labels, with_agreement
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
        typer.Option("--retry-failed", help="Resend only the rows whose result is an error."),
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
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            metavar="COLUMN",
            help="Input column of human labels: the summary shows the judge's agreement.",
            show_default=False,
        ),
    ] = None,
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
        | {"run.halt_on_chunk_failure": False if continue_on_failure else None}
        | {"budget.max_cost_usd": max_cost.strip().removeprefix("$") if max_cost else None}
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
    if labels is not None:
        check_labels(paths, labels, fmt, spec.prompt)
    if dry_run_flag:
        app.note("[bold]Dry run: nothing is submitted, no API key is used.[/]")
        app.emit(dry_run(paths, spec, settings), tables.dry_run_table)
        return
    app.note("[bold]Batch API: requests will be made.[/]")
    options = GradeOptions(
        output=output,
        output_format=datafiles.parse_format(output_format),
        overwrite=overwrite,
        force=force,
        detach=detach,
        retry_failed=retry_failed,
    )
    if output is not None and len(paths) > 1:
        raise UsageError("--output names one file, but several inputs were given.")
    if output is not None and output.exists() and not overwrite:
        raise OutputExistsError(
            f"{output} exists.", hint="Pass --overwrite, or choose another --output."
        )
    report = run_grade(app, settings, spec, paths, options, yes=yes)
    if labels is not None:
        report = with_agreement(report, labels, options.output_format, spec.text_column)
    app.emit(report, labelled_summary if labels is not None else tables.summary_table)
    if any(s.status == "failed" or s.failed for s in report.files):
        if json_output:  # the summary on stdout already says what failed
            raise typer.Exit(RunFailed.exit_code)
        raise RunFailed(
            "Some rows or batches failed; their rows carry llm_error in the output.",
            hint="batchgrader grade --retry-failed (same arguments) resends only those rows.",
        )
