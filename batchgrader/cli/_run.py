"""Running graded jobs from the CLI: client, ledger, board and Ctrl-C handling."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import typer

from batchgrader import paths
from batchgrader.cli._context import AppContext
from batchgrader.errors import InputFileError, Interrupted
from batchgrader.execution.batch import Identity
from batchgrader.execution.jobs import file_hash
from batchgrader.execution.resubmit import add_retry_chunks
from batchgrader.execution.run import (
    GradeOptions,
    RunReport,
    find_or_create_job,
    grade_file,
    spec_of_job,
)
from batchgrader.ledger.store import JobRow, Ledger
from batchgrader.masking import mask
from batchgrader.money import budget
from batchgrader.money.costs import today_cost
from batchgrader.prompting.spec import RequestSpec
from batchgrader.prompting.workload import Workload
from batchgrader.providers.base import BatchAPI
from batchgrader.render.board import RunBoard
from batchgrader.settings import Settings


def provider_client(settings: Settings) -> BatchAPI:
    # Imported here: the openai SDK takes about a second to import, and only the
    # commands that talk to the provider should pay for it.
    from batchgrader.providers.openai.client import BatchClient

    return BatchClient(settings.api)


def identity(settings: Settings) -> Identity:
    key = settings.api.key.get_secret_value() if settings.api.key else ""
    host = urlparse(settings.api.base_url or "https://api.openai.com/v1").hostname or "?"
    return Identity(api_key_prefix=mask(key), base_url_host=host)


def open_ledger(settings: Settings) -> Ledger:
    return Ledger.open(paths.ledger_db(settings.state_dir()))


def run_grade(
    app: AppContext,
    settings: Settings,
    spec: RequestSpec,
    files: list[Path],
    options: GradeOptions,
    *,
    yes: bool = False,
) -> RunReport:
    """Validate every file, check the budget, then grade them one after the other."""
    workloads = [Workload.of(path, spec) for path in files]
    current: list[str] = []  # the job being graded, for the resume hint

    def hint() -> str:
        again = "Run the same command again to resume"
        return again + (f" (or: batchgrader jobs resume {current[-1]})." if current else ".")

    with _session(settings, hint) as (client, ledger, report):
        prepared: list[tuple[Workload, JobRow]] = []
        for workload in workloads:
            job, _ = find_or_create_job(workload, spec, settings, ledger, options.force)
            if options.retry_failed and job.status in ("done", "failed"):
                job = _retry(app, settings, ledger, job)
            prepared.append((workload, job))
        check = budget.check_run(
            ledger, [job for _, job in prepared], spec, settings, now=datetime.now(UTC)
        )
        confirm_budget(check, yes=yes)
        with _board(app) as board:
            for workload, job in prepared:
                current.append(job.id)
                summary = grade_file(
                    workload,
                    job,
                    spec,
                    settings,
                    ledger,
                    client,
                    identity(settings),
                    options,
                    on_event=board.handle,
                )
                report.files.append(summary)
                if summary.status == "failed" and settings.run.halt_on_chunk_failure:
                    break
    return report


@contextmanager
def _session(
    settings: Settings, resume_hint: Callable[[], str]
) -> Iterator[tuple[BatchAPI, Ledger, RunReport]]:
    """Client, ledger and report of one run; Ctrl-C becomes ``Interrupted`` with a hint."""
    client = provider_client(settings)
    ledger = open_ledger(settings)
    report = RunReport(files=[])
    try:
        yield client, ledger, report
    except KeyboardInterrupt:
        raise Interrupted(
            "Interrupted. Batches already submitted keep running at the provider; nothing "
            "was cancelled and nothing will be paid twice.",
            hint=resume_hint(),
        ) from None
    finally:
        report.today_cost = today_cost(ledger)
        ledger.close()
        client.close()


def _board(app: AppContext) -> RunBoard:
    return RunBoard(app.err, quiet=app.json_mode or app.verbosity < 0)


def confirm_budget(check: budget.BudgetCheck, *, yes: bool) -> None:
    """Refuse a run over a budget, and ask before an expensive one, unless ``--yes``."""
    if yes:
        return
    check.raise_if_refused()
    if check.confirm is None:
        return
    if not _interactive():
        raise check.not_confirmed(interactive=False)
    if not typer.confirm(check.confirm + " Submit?", err=True):
        raise check.not_confirmed(interactive=True)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _retry(app: AppContext, settings: Settings, ledger: Ledger, job: JobRow) -> JobRow:
    count = add_retry_chunks(settings, ledger, job)
    app.note(
        f"Retrying {count:,} failed row(s) of job {job.id}."
        if count
        else f"Job {job.id} has no failed rows to retry."
    )
    fresh = ledger.job(job.id)
    assert fresh is not None
    return fresh


def resume_job(
    app: AppContext,
    settings: Settings,
    job: JobRow,
    *,
    retry_failed: bool = False,
    yes: bool = False,
) -> RunReport:
    """Continue a job by id, with the request settings it was created with.

    What it would submit now (queued chunks, resent rows) passes the budget check first,
    as in ``grade``.
    """
    spec = spec_of_job(job, settings)
    source = Path(job.input_path)
    if not source.exists() or file_hash(source) != job.input_hash:
        raise InputFileError(
            f"{source} is missing or changed since job {job.id} started.",
            hint="Restore the original file to resume this job.",
        )
    workload = Workload.of(source, spec)
    with _session(settings, lambda: f"batchgrader jobs resume {job.id}") as (
        client,
        ledger,
        report,
    ):
        if retry_failed:
            job = _retry(app, settings, ledger, job)
        check = budget.check_run(ledger, [job], spec, settings, now=datetime.now(UTC))
        confirm_budget(check, yes=yes)
        output = Path(job.output_path) if job.output_path else None
        options = GradeOptions(output=output, overwrite=output is not None)
        if job.status != "done":
            ledger.set_job(job.id, status="running")
            job.status = "running"
        with _board(app) as board:
            report.files.append(
                grade_file(
                    workload,
                    job,
                    spec,
                    settings,
                    ledger,
                    client,
                    identity(settings),
                    options,
                    on_event=board.handle,
                )
            )
    return report
