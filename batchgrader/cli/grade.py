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
    ProviderOption,
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
    provider: ProviderOption = None,
    endpoint: EndpointOption = None,
    max_tokens: MaxTokensOption = None,
    schema: SchemaOption = None,
    input_format: FormatOption = None,
    fail_on_empty: FailOnEmptyOption = False,
    allow_unpriced: AllowUnpricedOption = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the graded file here."),
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--output-format",
            metavar="FORMAT",
            help="Format of the graded file (default: the input's).",
        ),
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
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="batch (a Batch API), direct (concurrent calls) or auto (run.mode).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help="Direct mode: requests in flight at once (run.direct_concurrency).",
            show_default=False,
        ),
    ] = None,
    service_tier: Annotated[
        str | None,
        typer.Option(
            "--service-tier",
            help="OpenAI service tier, e.g. flex: Batch rates, answered synchronously "
            "(request.service_tier).",
            show_default=False,
        ),
    ] = None,
    pilot: Annotated[
        int | None,
        typer.Option(
            "--pilot",
            min=0,
            metavar="N",
            help="First send N sampled rows directly and check the answers parse (run.pilot_rows).",
            show_default=False,
        ),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            "--deadline",
            metavar="WHEN",
            help="Finish by then (40s, 90m, 2h, 1d or an ISO time): batches not done in time "
            "are finished directly (run.deadline).",
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
    """Grade every row of the input files with the judge (Batch API, or direct calls)."""
    from batchgrader.cli._run import finish, open_ledger, run_pilots, session
    from batchgrader.data import formats, reading
    from batchgrader.execution.pilot import PilotedDryRun
    from batchgrader.execution.resubmit import RetryScope
    from batchgrader.execution.run import Grader
    from batchgrader.execution.session import GradeOptions
    from batchgrader.planning.plans import dry_run
    from batchgrader.planning.spec import request_spec
    from batchgrader.render.planning import dry_run_table, piloted_dry_run
    from batchgrader.render.report import labelled_summary
    from batchgrader.report.run import check_labels, with_agreement

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
        | {"run.halt_on_chunk_failure": False if continue_on_failure else None}
        | {"budget.max_cost_usd": max_cost.strip().removeprefix("$") if max_cost else None}
        | {
            "run.mode": mode,
            "run.pilot_rows": pilot,
            "run.deadline": deadline,
            "run.direct_concurrency": concurrency,
            "request.service_tier": service_tier,
        }
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
    if labels is not None:
        check_labels(paths, labels, fmt, spec.prompt)
    if dry_run_flag:
        if not settings.run.pilot_rows:
            app.note("[bold]Dry run: nothing is submitted, no API key is used.[/]")
            app.emit(dry_run(paths, spec, settings), dry_run_table)
            return
        planned = dry_run(paths, spec, settings)
        reports = run_pilots(app, settings, spec, paths, yes=yes)
        app.emit(PilotedDryRun(**planned.model_dump(), pilot=reports), piloted_dry_run)
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
    retry = "batchgrader grade --retry-failed (same arguments)"
    if labels is None:
        finish(app, report, retry=retry)
    else:
        labelled = with_agreement(report, labels, options.output_format, spec.text_column)
        finish(app, labelled, retry=retry, render=labelled_summary)
    waiting = [s.job_id for s in report.files if s.status == "submitted"]
    if detach and waiting:  # the last line: what to run later
        resume = " && ".join(f"batchgrader jobs resume {job_id}" for job_id in waiting)
        app.line(f"Detached. To collect the results, run: {resume}")
