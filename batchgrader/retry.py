"""Resending only the rows whose result is an error, as new chunks of the same job."""

from __future__ import annotations

import json
import os

import polars as pl

from batchgrader import batchfile, jobs
from batchgrader.ledger import ChunkRow, JobRow, Ledger, now_iso
from batchgrader.settings import Settings

RETRY_PREFIX = "retry-"
#: Errors that a new request cannot fix (the judge did answer, or the row was empty).
_NOT_RETRIED = ("unparseable", "skipped")


def failed_rows(settings: Settings, job: JobRow, chunks: list[ChunkRow]) -> set[int]:
    """Rows whose latest result is a retryable error, or that were never submitted."""
    folder = jobs.results_dir(settings, job.id)
    files = [folder / c.result_file for c in chunks if c.result_file]
    rows: set[int] = set()
    if files:
        latest = (
            pl.scan_parquet(files)
            .unique(subset="row", keep="last", maintain_order=True)
            .filter(pl.col("llm_error").is_not_null())
            .filter(~pl.col("llm_error").str.starts_with(_NOT_RETRIED[0]))
            .filter(~pl.col("llm_error").str.starts_with(_NOT_RETRIED[1]))
            .select("row")
            .collect()
        )
        rows.update(latest["row"].to_list())
    for chunk in chunks:
        if chunk.status in ("failed", "halted") and not chunk.result_file:
            rows.update(jobs.request_rows(settings, job.id, chunk.request_file))
    return rows


def add_retry_chunks(settings: Settings, ledger: Ledger, job: JobRow) -> int:
    """Write request files for the failed rows as new chunks; returns the row count."""
    chunks = ledger.chunks(job.id)
    rows = failed_rows(settings, job, chunks)
    if not rows:
        return 0
    max_rows = min(settings.chunking.split_row_limit or 50_000, 50_000)
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
    stamp = now_iso()
    new: list[ChunkRow] = []
    next_idx = len(chunks)
    for start in range(0, len(lines), max_rows):
        part = lines[start : start + max_rows]
        name = f"{RETRY_PREFIX}{next_idx:04d}.jsonl"
        path = jobs.request_path(settings, job.id, name)
        data = "".join(line for _, line in part).encode("utf-8")
        tmp = path.with_name(name + ".tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        new.append(
            ChunkRow(
                job_id=job.id,
                idx=next_idx,
                first_row=part[0][0],
                last_row=part[-1][0],
                requests=len(part),
                tokens=_tokens_of(chunks, part),
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
        next_idx += 1
    for chunk in chunks:
        if chunk.status in ("failed", "halted"):
            ledger.set_chunk(job.id, chunk.idx, status="retried")
    ledger.add_chunks(new)
    ledger.set_job(job.id, status="running")
    return len(lines)


def _tokens_of(chunks: list[ChunkRow], part: list[tuple[int, str]]) -> int:
    """Tokens of retried rows, pro rata of their original chunks (for the caps)."""
    total = 0
    for row, _ in part:
        owner = next(c for c in chunks if c.first_row <= row <= c.last_row)
        total += -(-owner.tokens // max(owner.requests, 1))
    return total
