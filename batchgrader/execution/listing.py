"""Jobs as result models for ``jobs list`` and ``jobs show`` (docs/json.md: rows and chunks
numbered from 1, money in USD as numbers, times in UTC, durations in seconds)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel

from batchgrader.execution.answers import usage_id
from batchgrader.ledger.records import ChunkMode, ChunkRow, UsageEvent
from batchgrader.ledger.store import JobRow, Ledger


class JobLine(BaseModel):
    id: str
    file: str
    model: str
    status: str
    chunks_done: int
    chunks: int
    rows: int
    cost: Decimal | None
    created_at: datetime
    age_seconds: int
    output: str | None
    provider: str = "openai"


class JobList(BaseModel):
    jobs: list[JobLine]


class ChunkLine(BaseModel):
    chunk: int
    first_row: int
    last_row: int
    requests: int
    tokens: int
    status: str
    #: ``batch``, ``direct`` (rows sent one by one) or ``reused`` (answers paid before).
    mode: str
    batch_id: str | None
    completed: int
    failed: int
    error: str | None


class JobDetail(BaseModel):
    job: JobLine
    chunks: list[ChunkLine]


def _utc(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _line(job: JobRow, chunks: list[ChunkRow], events: list[UsageEvent]) -> JobLine:
    costs = [e.cost for e in events if e.cost is not None]
    return JobLine(
        id=job.id,
        file=job.input_path,
        model=job.model,
        status=job.status,
        chunks_done=sum(1 for c in chunks if c.status == "done"),
        chunks=len(chunks),
        rows=job.rows,
        cost=sum(costs, Decimal(0)) if costs else None,
        created_at=_utc(job.created_at),
        age_seconds=max(0, int((datetime.now(UTC) - _utc(job.created_at)).total_seconds())),
        output=job.output_path,
        provider=job.provider,
    )


def job_list(ledger: Ledger, *, include_finished: bool) -> JobList:
    return JobList(
        jobs=[
            _line(j, ledger.chunks(j.id), ledger.usage_events(job_id=j.id))
            for j in ledger.jobs(include_finished=include_finished)
        ]
    )


def job_detail(ledger: Ledger, job: JobRow) -> JobDetail:
    """The job and its chunks with the counts so far: a batch's as the provider last
    reported them, a direct chunk's answers as they are made durable (its usage event)."""
    batches = {b["id"]: b for b in ledger.batches(job.id)}
    chunks = ledger.chunks(job.id)
    events = ledger.usage_events(job_id=job.id)
    answered = {e.batch_id: e for e in events}
    lines = []
    for c in chunks:
        batch = batches.get(c.batch_id or "")
        completed, failed = (batch["completed"], batch["failed"]) if batch else (0, 0)
        direct = answered.get(usage_id(job.id, c.idx)) if c.mode is ChunkMode.DIRECT else None
        if direct is not None:
            completed, failed = direct.requests_completed, direct.requests_failed
        lines.append(
            ChunkLine(
                chunk=c.idx + 1,
                first_row=c.first_row + 1,
                last_row=c.last_row + 1,
                requests=c.requests,
                tokens=c.tokens,
                status=batch["status"] if batch and c.status == "submitted" else c.status,
                mode=c.mode,
                batch_id=c.batch_id,
                completed=completed,
                failed=failed,
                error=c.error,
            )
        )
    return JobDetail(job=_line(job, chunks, events), chunks=lines)
