"""Looking after jobs: cancel one, clean up finished ones, adopt a batch, forget limits.

The logic of ``jobs cancel``, ``jobs clean``, ``jobs adopt`` and ``jobs forget-limits``
lives here, in the core; the CLI parses flags and renders what these return.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from batchgrader.errors import UsageError
from batchgrader.execution.batch import BatchExecutor
from batchgrader.execution.events import Identity
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.merge import result_windows
from batchgrader.execution.results import permanent
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.execution.reuse import forget
from batchgrader.ledger.records import ChunkStatus, JobRow, JobStatus
from batchgrader.ledger.store import Ledger
from batchgrader.money.budget import release_reservations
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import BatchInfo, BatchState, BatchTransport
from batchgrader.settings import Settings

log = logging.getLogger(__name__)


class CleanReport(BaseModel):
    """What ``jobs clean`` removed and kept."""

    removed: list[str]
    kept_for_retry: list[str]
    remote_files_deleted: int


def cancel_job(
    settings: Settings,
    ledger: Ledger,
    transport: BatchTransport,
    spec: RequestSpec,
    identity: Identity,
    job: JobRow,
    policy: RetryPolicy,
) -> list[BatchInfo]:
    """Cancel the job's running batches and halt its queued chunks; the job is cancelled.

    Finished results are kept; ``jobs resume`` collects what the cancelled batches did.
    """
    executor = BatchExecutor(transport, ledger, settings, spec, identity, policy=policy)
    cancelled = executor.cancel(job)
    release_reservations(ledger, [job.id])
    ledger.set_job(job.id, status=JobStatus.CANCELLED)
    return cancelled


def adopt_batch(
    ledger: Ledger,
    transport: BatchTransport,
    policy: RetryPolicy,
    job: JobRow,
    chunk: int,
    batch_id: str,
) -> BatchInfo:
    """Make ``batch_id`` the batch of chunk ``chunk`` (1-based) after an ambiguous lost create."""
    chunks = {c.idx: c for c in ledger.chunks(job.id)}
    row = chunks.get(chunk - 1)
    if row is None:
        raise UsageError(f"Job {job.id} has no chunk {chunk}.")
    if row.status is not ChunkStatus.CREATING:
        raise UsageError(
            f"Chunk {chunk} of job {job.id} is {row.status}, not waiting for its batch.",
            hint="Only a chunk whose create answer was lost can adopt a batch.",
        )
    if batch_id in ledger.batch_ids():
        raise UsageError(f"Batch {batch_id} already belongs to a chunk.")
    info = policy.call(lambda: transport.retrieve(batch_id), f"batch {batch_id}")
    if info.total and info.total != row.requests:
        raise UsageError(
            f"Batch {batch_id} holds {info.total} requests; chunk {chunk} has {row.requests}."
        )
    ledger.set_chunk(job.id, row.idx, status=ChunkStatus.SUBMITTED, batch_id=info.id)
    ledger.record_batch(info.id, job.id, row.idx, info.status, input_ref=row.prepared_ref)
    return info


def clean_jobs(
    settings: Settings,
    ledger: Ledger,
    transport_for: Callable[[str], BatchTransport | None],
) -> CleanReport:
    """Remove finished jobs' files; keep what ``--retry-failed`` needs of failed jobs.

    A job whose graded file is written has no use for its request files and downloads.
    Its row results and its copy of the rows are kept when some rows failed in a way a
    retry could fix; otherwise the whole job folder goes. Files (or, at Anthropic,
    batches) left at the provider (run.delete_remote_files was off, or a delete failed)
    are deleted when ``transport_for`` the job's provider gives a transport (a key is set).
    """
    removed: list[str] = []
    kept: list[str] = []
    deleted = 0
    for job in ledger.jobs():
        files = JobFiles(settings, job.id)
        transport = transport_for(job.provider) if job.status.finished else None
        if transport is not None:
            deleted += _delete_remote(ledger, transport, job)
        if not files.folder.exists() or not job.status.finished:
            continue
        written = job.output_path is not None and Path(job.output_path).exists()
        if job.status is JobStatus.CANCELLED or not written:
            continue  # resumable: its files are what resuming it needs
        if job.status is JobStatus.FAILED or _retryable(settings, ledger, job):
            files.remove_temporary()
            kept.append(job.id)
        else:
            files.remove()
            forget(ledger, job.id)
            removed.append(job.id)
    return CleanReport(removed=removed, kept_for_retry=kept, remote_files_deleted=deleted)


def _retryable(settings: Settings, ledger: Ledger, job: JobRow) -> bool:
    files = JobFiles(settings, job.id)
    chunks = ledger.chunks(job.id)
    if not any(c.result_file for c in chunks):
        return False
    code = pl.col("error_code")
    for _, latest in result_windows(files, job, chunks):
        try:
            found = latest.filter(code.is_not_null() & ~permanent(code)).limit(1).collect()
        except (OSError, pl.exceptions.PolarsError):
            return False
        if found.height:
            return True
    return False


def _delete_remote(ledger: Ledger, transport: BatchTransport, job: JobRow) -> int:
    count = 0
    for batch in ledger.batches(job.id):
        if batch["remote_deleted"]:
            continue
        results = tuple(json.loads(batch["results"] or "[]"))
        info = BatchInfo(
            id=batch["id"],
            status=batch["status"],
            state=BatchState.COMPLETED,
            created_at=0,
            total=0,
            completed=0,
            failed=0,
            results=results,
            input_ref=batch["input_ref"],
        )
        if transport.delete(info, None):
            ledger.mark_deleted(batch["id"])
            count += (1 if batch["input_ref"] else 0) + len(results)
    return count


class ForgottenLimits(BaseModel):
    """The learned enqueued-token limits ``jobs forget-limits`` forgot (model: tokens)."""

    forgotten: dict[str, int]


def forget_limits(ledger: Ledger, model: str | None) -> dict[str, int]:
    """Forget learned enqueued-token limits; returns what was forgotten."""
    known = ledger.learned_limits()
    forgotten = {m: v for m, v in known.items() if model is None or m == model}
    ledger.forget_limits(model)
    return forgotten
