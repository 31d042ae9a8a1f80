"""The CLI side of a run: the ledger, the board, questions and messages for the user."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import typer

from batchgrader import paths
from batchgrader.cli._context import AppContext
from batchgrader.errors import JobNotFound, RunFailed
from batchgrader.execution.events import Identity
from batchgrader.execution.run import RunReport, Session, open_session
from batchgrader.ledger.records import JobRow
from batchgrader.ledger.store import Ledger
from batchgrader.masking import mask
from batchgrader.planning.spec import RequestSpec
from batchgrader.render import tables
from batchgrader.render.board import RunBoard
from batchgrader.settings import Settings


def identity(settings: Settings) -> Identity:
    key = settings.api.key.get_secret_value() if settings.api.key else ""
    host = urlparse(settings.api.base_url or "https://api.openai.com/v1").hostname or "?"
    return Identity(api_key_prefix=mask(key), base_url_host=host)


def open_ledger(settings: Settings) -> Ledger:
    return Ledger.open(paths.ledger_db(settings.state_dir()))


def find_job(ledger: Ledger, job_id: str) -> JobRow:
    job = ledger.job(job_id)
    if job is None:
        raise JobNotFound(
            f"No job '{job_id}' in {ledger.path}.",
            hint="batchgrader jobs list --all shows every job.",
        )
    return job


@contextmanager
def session(
    app: AppContext, settings: Settings, spec: RequestSpec, ledger: Ledger
) -> Iterator[Session]:
    """A run's session with the live board, messages and questions wired to the terminal."""
    board = RunBoard(app.err, quiet=app.json_mode or app.verbosity < 0)
    with (
        board,
        open_session(
            settings,
            spec,
            ledger,
            identity(settings),
            on_event=board.handle,
            say=app.note,
            confirm=_confirm if _interactive() else None,
            on_first_request=lambda: app.note("[bold]Batch API: requests are being made.[/]"),
        ) as opened,
    ):
        for note in spec.notes:
            app.note(note)
        yield opened


def _interactive() -> bool:
    return sys.stdin.isatty()


def _confirm(question: str) -> bool:
    return typer.confirm(question, err=True)


def finish(app: AppContext, report: RunReport, *, retry: str) -> None:
    """Print the run's summary; exit 1 when rows or batches failed.

    ``retry`` is the command that resends failed rows (``grade ... --retry-failed`` or
    ``jobs retry ID``); it is suggested only for rows a retry can fix.
    """
    app.emit(report, tables.summary_table)
    failed = sum(s.failed for s in report.files)
    invalid = sum(s.invalid_answers for s in report.files)
    if not (failed or invalid or any(s.status == "failed" for s in report.files)):
        return
    if app.json_mode:  # the summary on stdout already says what failed
        raise typer.Exit(RunFailed.exit_code)
    errors = [e for s in report.files for e in s.errors]
    if not (failed or invalid):  # the job itself failed (its summary says how)
        raise RunFailed(errors[-1] if errors else "A job failed.")
    if failed:
        hint = f"{retry} resends only the {failed:,} row(s) a retry can fix."
    else:
        hint = (
            f"The {invalid:,} row(s) without a score got an answer that cannot be used "
            "(unparseable, refused, truncated or invalid): sending the same request again "
            "would not change it. Fix the prompt or settings, or add --retry-failed=all "
            "to resend them anyway."
        )
    raise RunFailed(
        "Some rows or batches failed; their rows carry llm_error in the output.", hint=hint
    )
