"""Running graded jobs from the CLI: client, ledger, board and Ctrl-C handling."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from batchgrader import paths
from batchgrader.cli._context import AppContext
from batchgrader.errors import Interrupted, RunFailed
from batchgrader.grading import (
    GradeOptions,
    RunReport,
    find_or_create_job,
    grade_file,
    open_workload,
)
from batchgrader.ledger import Ledger
from batchgrader.masking import mask
from batchgrader.openai_batch import BatchClient
from batchgrader.render.board import RunBoard
from batchgrader.requestspec import RequestSpec
from batchgrader.runner import Identity
from batchgrader.settings import Settings


def identity(settings: Settings) -> Identity:
    key = settings.api.key.get_secret_value() if settings.api.key else ""
    host = urlparse(settings.api.base_url or "https://api.openai.com/v1").hostname or "?"
    return Identity(api_key_prefix=mask(key), base_url_host=host)


def open_ledger(settings: Settings) -> Ledger:
    return Ledger.open(paths.ledger_db(settings.state_dir()))


def today_cost(ledger: Ledger) -> str | None:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = ledger.usage_events(since=start.isoformat(timespec="seconds"))
    costs = [e.cost for e in events if e.cost is not None]
    return str(sum(costs, Decimal(0))) if costs else None


def run_grade(
    app: AppContext,
    settings: Settings,
    spec: RequestSpec,
    files: list[Path],
    options: GradeOptions,
) -> RunReport:
    """Validate every file, then grade them one after the other."""
    workloads = [open_workload(path, spec) for path in files]
    client = BatchClient(settings.api)
    ledger = open_ledger(settings)
    report = RunReport(files=[])
    job_id = None
    try:
        with RunBoard(app.err, live=None if not app.json_mode else False) as board:
            for workload in workloads:
                job, _ = find_or_create_job(workload, spec, settings, ledger, options.force)
                job_id = job.id
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
    except KeyboardInterrupt:
        raise Interrupted(
            "Interrupted. Batches already submitted keep running at the provider; nothing "
            "was cancelled and nothing will be paid twice.",
            hint="Run the same command again to resume"
            + (f" (or: batchgrader jobs resume {job_id})." if job_id else "."),
        ) from None
    finally:
        report.today_cost = today_cost(ledger)
        ledger.close()
    return report


__all__ = ["RunFailed", "run_grade"]
