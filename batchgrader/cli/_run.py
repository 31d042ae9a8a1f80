"""The CLI side of a run: the ledger, the board, questions and messages for the user."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import typer
from rich.console import RenderableType

from batchgrader import paths
from batchgrader.cli._context import AppContext
from batchgrader.errors import JobNotFound, RunFailed
from batchgrader.execution.events import Identity
from batchgrader.execution.pilot import PilotReport
from batchgrader.execution.run import Grader
from batchgrader.execution.session import GradeOptions, RunReport, Session, open_session
from batchgrader.ledger.records import JobRow
from batchgrader.ledger.store import Ledger
from batchgrader.masking import mask
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import Provider
from batchgrader.render.board import RunBoard
from batchgrader.render.planning import pilot_table
from batchgrader.render.summary import summary_table
from batchgrader.settings import Settings


def identity(provider: Provider) -> Identity:
    """Who spends: the masked key and the host of the provider in force."""
    account = provider.account()
    host = urlparse(account.base_url).hostname or "?"
    return Identity(api_key_prefix=mask(account.key), base_url_host=host)


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
            identity(spec.provider),
            on_event=board.handle,
            on_tick=board.tick,
            say=app.note,
            confirm=_confirm if _interactive() else None,
            on_first_request=lambda: app.note(
                f"[bold]{_where(spec.provider)}: requests are being made.[/]"
            ),
        ) as opened,
    ):
        if not app.json_mode:
            opened.on_pilot = lambda report: app.err.print(pilot_table(report))
        for note in spec.notes:
            app.note(note)
        yield opened


def _where(provider: Provider) -> str:
    """Who the requests go to: "OpenAI", "Anthropic", or a server's URL (vLLM, Ollama...)."""
    from batchgrader.providers import anthropic, openai

    services = {
        urlparse(openai.DEFAULT_BASE_URL).hostname: "OpenAI",
        urlparse(anthropic.DEFAULT_BASE_URL).hostname: "Anthropic",
    }
    base_url = provider.account().base_url
    return services.get(urlparse(base_url).hostname, base_url.rstrip("/"))


def _interactive() -> bool:
    return sys.stdin.isatty()


def _confirm(question: str) -> bool:
    return typer.confirm(question, err=True)


def finish(
    app: AppContext,
    report: RunReport,
    *,
    retry: str,
    render: Callable[[Any], RenderableType] = summary_table,
) -> None:
    """Print the run's summary; exit 1 when rows or batches failed.

    ``retry`` is the command that resends failed rows (``grade ... --retry-failed`` or
    ``jobs retry ID``); it is suggested only for rows a retry can fix.
    """
    app.emit(report, render)
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


def run_pilots(
    app: AppContext, settings: Settings, spec: RequestSpec, paths: list[Path], *, yes: bool
) -> list[PilotReport]:
    """The files' pilots (``--pilot N`` on count and dry runs): they need a key, and say so."""
    app.note(
        f"[bold]Pilot: {settings.run.pilot_rows:,} rows of each file are sent now (this needs "
        "an API key, and is paid for); a later grade reuses their answers.[/]"
    )
    with open_ledger(settings) as ledger, session(app, settings, spec, ledger) as opened:
        opened.on_pilot = lambda report: None  # shown with the counts
        return Grader(opened).pilot_only(paths, GradeOptions(yes=yes))
