"""What the ledger knows about the job that wrote a graded file.

The job's request settings say what the file's fields are (the score's scale, the
answer schema, the graded text column); its usage events say what it cost. Every
ledger access of the report is in ``find_job``, so it is one function to adapt when
the ledger moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from batchgrader.ledger.store import Ledger
from batchgrader.planning.spec import StoredRequest


@dataclass(frozen=True)
class UsageTotals:
    """Collected (not in-flight) usage of a job, summed over its batches."""

    batches: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Decimal | None  # None when no batch has a price
    unpriced_batches: int


@dataclass(frozen=True)
class JobFacts:
    """The job that wrote a graded file: identity, request settings, usage."""

    id: str
    model: str
    scale: tuple[int, int] | None
    schema: dict[str, Any] | None
    text_column: str | None
    usage: UsageTotals


def find_job(ledger_db: Path, graded: Path) -> JobFacts | None:
    """The newest job whose output is ``graded``, or None (no ledger, or no such job).

    A job's ``output_path`` is stored as it was written; a relative one (the default
    ``paths.output_dir`` is relative) is resolved against the current folder. The
    ledger is never created here: a report only reads.
    """
    if not ledger_db.is_file():
        return None
    target = graded.resolve()
    ledger = Ledger.open(ledger_db)
    try:
        job = next(
            (j for j in ledger.jobs() if j.output_path and Path(j.output_path).resolve() == target),
            None,
        )
        if job is None:
            return None
        events = [e for e in ledger.usage_events(job_id=job.id) if not e.committed]
    finally:
        ledger.close()
    priced = [e.cost for e in events if e.cost is not None]
    usage = UsageTotals(
        batches=len(events),
        input_tokens=sum(e.input_tokens for e in events),
        cached_input_tokens=sum(e.cached_input_tokens for e in events),
        output_tokens=sum(e.output_tokens for e in events),
        reasoning_tokens=sum(e.reasoning_tokens for e in events),
        total_tokens=sum(e.total_tokens for e in events),
        cost=sum(priced, Decimal(0)) if priced else None,
        unpriced_batches=len(events) - len(priced),
    )
    try:
        stored = StoredRequest.parse(job.request_settings)
    except (ValueError, KeyError):  # a job of an unknown shape: no facts, not a failure
        return JobFacts(job.id, job.model, None, None, None, usage)
    return JobFacts(
        id=job.id,
        model=job.model,
        scale=stored.scale,
        schema=stored.schema_,
        text_column=stored.column,
        usage=usage,
    )
