"""``batchgrader jobs list|show|resume|retry|cancel|clean|adopt|forget-limits``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import JsonOption, YesOption

if TYPE_CHECKING:  # the core is loaded by the commands, not by --help or a TAB
    from batchgrader.execution.resubmit import RetryScope
    from batchgrader.execution.retrying import RetryPolicy
    from batchgrader.providers.base import BatchTransport
    from batchgrader.settings import Settings

jobs_app = typer.Typer(
    no_args_is_help=True, help="List, inspect, resume, retry, cancel and clean up jobs."
)
JobId = Annotated[
    str, typer.Argument(metavar="JOB_ID", help="Job id (from 'batchgrader jobs list').")
]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Stop (exit 2) if another process is running this job.")
]


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    all_jobs: Annotated[bool, typer.Option("--all", help="Include finished jobs.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List running jobs (all jobs with --all)."""
    from batchgrader.cli._run import open_ledger
    from batchgrader.execution.listing import job_list
    from batchgrader.render.jobs import jobs_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    with open_ledger(app.load().settings) as ledger:
        app.emit(job_list(ledger, include_finished=all_jobs), jobs_table)


@jobs_app.command("show")
def show(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False) -> None:
    """Show a job's chunks: batch ids, status, counts and errors."""
    from batchgrader.cli._run import find_job, open_ledger
    from batchgrader.execution.listing import job_detail
    from batchgrader.render.jobs import job_detail_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    with open_ledger(app.load().settings) as ledger:
        app.emit(job_detail(ledger, find_job(ledger, job_id)), job_detail_table)


def _resume(
    ctx: typer.Context,
    job_id: str,
    json_output: bool,
    *,
    retry: RetryScope | None,
    yes: bool,
    no_wait: bool,
) -> None:
    from batchgrader.cli._run import find_job, finish, open_ledger, session
    from batchgrader.execution.run import Grader
    from batchgrader.execution.session import GradeOptions
    from batchgrader.planning.spec import spec_of_job

    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    with open_ledger(settings) as ledger:
        job = find_job(ledger, job_id)
        spec = spec_of_job(job.request_settings, settings)
        options = GradeOptions(retry=retry, yes=yes, wait=not no_wait)
        with session(app, settings, spec, ledger) as opened:
            report = Grader(opened).resume(job, options)
    finish(app, report, retry=f"batchgrader jobs retry {job_id}")


@jobs_app.command("resume")
def resume(
    ctx: typer.Context,
    job_id: JobId,
    yes: YesOption = False,
    no_wait: NoWaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Continue a job: submit what is queued, poll what runs, collect and write."""
    _resume(ctx, job_id, json_output, retry=None, yes=yes, no_wait=no_wait)


@jobs_app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: JobId,
    all_errors: Annotated[
        bool,
        typer.Option("--all", help="Also resend rows whose error is permanent (unparseable...)."),
    ] = False,
    yes: YesOption = False,
    no_wait: NoWaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Resend the rows of a job whose error a retry can fix, and update its graded file."""
    from batchgrader.execution.resubmit import RetryScope

    scope = RetryScope.ALL if all_errors else RetryScope.FAILED
    _resume(ctx, job_id, json_output, retry=scope, yes=yes, no_wait=no_wait)


@jobs_app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False) -> None:
    """Cancel a job's running batches at the provider; finished results are kept."""
    from batchgrader.cli._run import find_job, identity, open_ledger
    from batchgrader.execution.listing import job_detail
    from batchgrader.execution.maintenance import (
        cancel_job,
    )
    from batchgrader.ledger.records import ChunkMode
    from batchgrader.planning.spec import spec_of_job
    from batchgrader.render.jobs import job_detail_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    with open_ledger(settings) as ledger:
        job = find_job(ledger, job_id)
        spec = spec_of_job(job.request_settings, settings)
        transport = spec.provider.batch_transport()
        try:
            policy = _policy(settings, transport)
            for info in cancel_job(
                settings, ledger, transport, spec, identity(spec.provider), job, policy
            ):
                app.note(f"batch {info.id}: {info.status}")
        finally:
            transport.close()
        if any(c.mode is ChunkMode.DIRECT for c in ledger.chunks(job.id)):
            app.note(
                f"Cancelled: a run sending its rows directly stops within a second, its "
                f"answers kept. 'batchgrader jobs resume {job.id}' sends the rest and "
                "writes the graded file."
            )
        else:
            app.note(
                f"Cancelled. 'batchgrader jobs resume {job.id}' collects what the batches "
                "finished and writes the graded file."
            )
        app.emit(job_detail(ledger, find_job(ledger, job_id)), job_detail_table)


@jobs_app.command("clean")
def clean(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Remove finished jobs' files; keep what --retry-failed needs of jobs with failed rows."""
    from batchgrader.cli._run import open_ledger
    from batchgrader.execution.maintenance import (
        clean_jobs,
    )
    from batchgrader.providers.registry import provider_for
    from batchgrader.render.jobs import clean_report

    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    transports: dict[str, BatchTransport | None] = {}

    def transport_for(name: str) -> BatchTransport | None:
        """The provider's transport, made once, when its key is set (else None)."""
        if name not in transports:
            provider = provider_for(settings, name)
            transports[name] = provider.batch_transport() if provider.account().key else None
        return transports[name]

    with open_ledger(settings) as ledger:
        try:
            report = clean_jobs(settings, ledger, transport_for)
        finally:
            for transport in transports.values():
                if transport is not None:
                    transport.close()
    app.emit(report, clean_report)


@jobs_app.command("adopt")
def adopt(
    ctx: typer.Context,
    job_id: JobId,
    chunk: Annotated[
        int, typer.Option("--chunk", metavar="N", help="The chunk (numbered from 1).", min=1)
    ],
    batch: Annotated[
        str,
        typer.Option("--batch", metavar="BATCH_ID", help="The provider batch id to adopt."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Adopt a batch as a chunk's, after a lost create answer left several candidates."""
    from batchgrader.cli._run import find_job, open_ledger
    from batchgrader.execution.listing import job_detail
    from batchgrader.execution.maintenance import (
        adopt_batch,
    )
    from batchgrader.planning.spec import spec_of_job
    from batchgrader.render.jobs import job_detail_table

    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    with open_ledger(settings) as ledger:
        job = find_job(ledger, job_id)
        spec = spec_of_job(job.request_settings, settings)
        transport = spec.provider.batch_transport()
        try:
            info = adopt_batch(ledger, transport, _policy(settings, transport), job, chunk, batch)
        finally:
            transport.close()
        app.note(f"Chunk {chunk} of job {job.id} is batch {info.id} ({info.status}).")
        app.emit(job_detail(ledger, job), job_detail_table)


@jobs_app.command("forget-limits")
def forget(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(metavar="MODEL", help="Only this model's limit (default: every model)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Forget the enqueued-token limits learned from the provider's refusals."""
    from batchgrader.cli._run import open_ledger
    from batchgrader.execution.maintenance import (
        ForgottenLimits,
        forget_limits,
    )
    from batchgrader.render.jobs import forgotten_limits

    app = AppContext.of(ctx)
    app.json_mode = json_output
    with open_ledger(app.load().settings) as ledger:
        forgotten = forget_limits(ledger, model)
    app.emit(ForgottenLimits(forgotten=forgotten), forgotten_limits)


def _policy(settings: Settings, transport: BatchTransport) -> RetryPolicy:
    from batchgrader.execution.retrying import RetryPolicy

    return RetryPolicy(
        retries=settings.api.max_retries,
        max_wait=settings.api.retry_max_wait_seconds,
        sleep=time.sleep,
        base_url=getattr(transport, "base_url", None),
    )
