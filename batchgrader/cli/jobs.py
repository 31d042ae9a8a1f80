"""``batchgrader jobs list|show|resume|retry|cancel|clean``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import JsonOption, YesOption
from batchgrader.cli._run import open_ledger, provider_client, resume_job
from batchgrader.errors import JobNotFound, RunFailed
from batchgrader.execution import jobs as job_files
from batchgrader.execution.listing import job_detail, job_list
from batchgrader.ledger.store import JobRow, Ledger
from batchgrader.render import tables

jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, resume, retry and cancel jobs.")
JobId = Annotated[str, typer.Argument(help="Job id (from 'batchgrader jobs list').")]


def _job(ledger: Ledger, job_id: str) -> JobRow:
    job = ledger.job(job_id)
    if job is None:
        raise JobNotFound(
            f"No job '{job_id}' in {ledger.path}.",
            hint="batchgrader jobs list --all shows every job.",
        )
    return job


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    all_jobs: Annotated[bool, typer.Option("--all", help="Include finished jobs.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List running jobs (all jobs with --all)."""
    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    ledger = open_ledger(settings)
    try:
        app.emit(job_list(ledger, include_finished=all_jobs), tables.jobs_table)
    finally:
        ledger.close()


@jobs_app.command("show")
def show(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False) -> None:
    """Show a job's chunks: batch ids, status, counts and errors."""
    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    ledger = open_ledger(settings)
    try:
        app.emit(job_detail(ledger, _job(ledger, job_id)), tables.job_detail_table)
    finally:
        ledger.close()


def _resume(ctx: typer.Context, job_id: str, json_output: bool, retry: bool, yes: bool) -> None:
    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    ledger = open_ledger(settings)
    try:
        job = _job(ledger, job_id)
    finally:
        ledger.close()
    report = resume_job(app, settings, job, retry_failed=retry, yes=yes)
    app.emit(report, tables.summary_table)
    if any(s.status == "failed" or s.failed for s in report.files):
        if json_output:  # the summary on stdout already says what failed
            raise typer.Exit(RunFailed.exit_code)
        raise RunFailed("Some rows or batches failed; their rows carry llm_error.")


@jobs_app.command("resume")
def resume(
    ctx: typer.Context, job_id: JobId, yes: YesOption = False, json_output: JsonOption = False
) -> None:
    """Continue a job: submit what is queued, poll what runs, collect and write."""
    _resume(ctx, job_id, json_output, retry=False, yes=yes)


@jobs_app.command("retry")
def retry(
    ctx: typer.Context, job_id: JobId, yes: YesOption = False, json_output: JsonOption = False
) -> None:
    """Resend only the rows of a job whose result is an error, and merge them in."""
    _resume(ctx, job_id, json_output, retry=True, yes=yes)


@jobs_app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False) -> None:
    """Cancel a job's running batches at the provider; finished results are kept."""
    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    ledger = open_ledger(settings)
    client = provider_client(settings)
    try:
        job = _job(ledger, job_id)
        for chunk in ledger.chunks(job.id):
            if chunk.status == "submitted" and chunk.batch_id:
                info = client.cancel(chunk.batch_id)
                ledger.record_batch(info.id, job.id, chunk.idx, info.status)
                app.note(f"chunk {chunk.idx + 1}: batch {info.id} {info.status}")
            elif chunk.status in ("pending", "uploaded"):
                ledger.set_chunk(
                    job.id, chunk.idx, status="halted", error="not submitted: job cancelled"
                )
        app.note(
            "Cancelled. Run 'batchgrader jobs resume "
            f"{job.id}' to collect partial results and write the output."
        )
        app.emit(job_detail(ledger, job), tables.job_detail_table)
    finally:
        ledger.close()
        client.close()


@jobs_app.command("clean")
def clean(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Remove finished jobs' temporary files (never results not yet written out)."""
    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    ledger = open_ledger(settings)
    removed = []
    try:
        for job in ledger.jobs():
            folder = job_files.job_dir(settings, job.id)
            written = job.output_path is not None and Path(job.output_path).exists()
            if job.status in ("done", "failed", "superseded") and written and folder.exists():
                job_files.remove_job_files(settings, job.id)
                removed.append(job.id)
    finally:
        ledger.close()
    app.note(f"Removed the files of {len(removed)} finished job(s).")
    if json_output:
        typer.echo(json.dumps({"removed": removed}, indent=2))
