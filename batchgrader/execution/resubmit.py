"""Resending only the rows whose result is an error, as new chunks of the same job."""

from __future__ import annotations

import json
import os

import polars as pl

from batchgrader.execution import jobs
from batchgrader.ledger.store import ChunkRow, JobRow, Ledger, now_iso
from batchgrader.planning.chunking import ChunkPlanner
from batchgrader.planning.plans import limits_for
from batchgrader.providers.openai import requests as batchfile
from batchgrader.settings import Settings

RETRY_PREFIX = "retry-"
#: Errors that a new request cannot fix (the judge did answer, or the row was empty).
_NOT_RETRIED = ("unparseable", "skipped")


def failed_rows(
    settings: Settings, job: JobRow, chunks: list[ChunkRow], only: tuple[str, ...] | None = None
) -> set[int]:
    """Rows whose latest result is a retryable error, or that were never submitted.

    ``only`` restricts the retry to errors starting with one of its prefixes (the
    automatic retry of rows an expired batch did not run).
    """
    error = pl.col("llm_error")
    wanted = (
        pl.any_horizontal([error.str.starts_with(p) for p in only])
        if only
        else ~pl.any_horizontal([error.str.starts_with(p) for p in _NOT_RETRIED])
    )
    rows: set[int] = set()
    for _, latest in jobs.result_windows(settings, job, chunks):
        found = latest.filter(error.is_not_null() & wanted).select("row").collect()
        rows.update(found["row"].to_list())
    if only is None:
        for chunk in chunks:
            if chunk.status in ("failed", "halted") and not chunk.result_file:
                rows.update(jobs.request_rows(settings, job.id, chunk.request_file))
    return rows


def add_retry_chunks(
    settings: Settings, ledger: Ledger, job: JobRow, only: tuple[str, ...] | None = None
) -> int:
    """Write request files for the failed rows as new chunks; returns the row count.

    The new chunks are planned under the same limits as the job's first plan.
    """
    chunks = ledger.chunks(job.id)
    rows = failed_rows(settings, job, chunks, only)
    if not rows:
        return 0
    lines: list[tuple[int, str]] = []
    for chunk in chunks:
        path = jobs.request_path(settings, job.id, chunk.request_file)
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                row = batchfile.row_of(json.loads(line)["custom_id"])
                if row in rows:
                    lines.append((row, line))
                    rows.discard(row)
    lines.sort()
    planner = ChunkPlanner(limits_for(settings, job.model, ledger.learned_limit(job.model)))
    parts: list[list[tuple[int, str]]] = []
    for row, line in lines:
        if planner.add(row, _row_tokens(chunks, row), len(line.encode("utf-8"))):
            parts.append([])
        parts[-1].append((row, line))
    stamp = now_iso()
    new: list[ChunkRow] = []
    for offset, part in enumerate(parts):
        idx = len(chunks) + offset
        name = f"{RETRY_PREFIX}{idx:04d}.jsonl"
        path = jobs.request_path(settings, job.id, name)
        data = "".join(line for _, line in part).encode("utf-8")
        tmp = path.with_name(name + ".tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        new.append(
            ChunkRow(
                job_id=job.id,
                idx=idx,
                first_row=part[0][0],
                last_row=part[-1][0],
                requests=len(part),
                tokens=sum(_row_tokens(chunks, row) for row, _ in part),
                bytes=len(data),
                request_file=name,
                status="pending",
                input_file_id=None,
                batch_id=None,
                attempt=0,
                intent_at=None,
                error=None,
                result_file=None,
                updated_at=stamp,
            )
        )
    if only is None:
        for chunk in chunks:
            if chunk.status in ("failed", "halted"):
                ledger.set_chunk(job.id, chunk.idx, status="retried")
    ledger.add_chunks(new)
    ledger.set_job(job.id, status="running")
    return len(lines)


def _row_tokens(chunks: list[ChunkRow], row: int) -> int:
    """A row's tokens, pro rata of the first chunk that held it (for the caps)."""
    owner = next(c for c in chunks if c.first_row <= row <= c.last_row)
    return -(-owner.tokens // max(owner.requests, 1))
