"""Resending only the rows whose result is an error, as new chunks of the same job.

Rows whose error a new request can fix (not run, expired, provider failures) are
resent; rows whose error is permanent (an unparseable or refused answer, a request
the provider refuses as invalid) only when asked (``--retry-failed=all``). Their
request lines come from the job's request files, or, after ``jobs clean`` removed
those, are built again from the (unchanged) input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from enum import StrEnum

import polars as pl

from batchgrader.errors import InputFileError
from batchgrader.execution.identity import file_hash
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.merge import result_windows
from batchgrader.execution.results import permanent
from batchgrader.execution.summary import RETRY_PREFIX
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, JobStatus
from batchgrader.ledger.store import Ledger, now_iso
from batchgrader.planning.chunking import ChunkPlanner
from batchgrader.planning.plans import limits_for
from batchgrader.planning.spec import RequestSpec
from batchgrader.planning.workload import Workload
from batchgrader.providers.base import RequestCodec, custom_id, row_of
from batchgrader.settings import Settings


class RetryScope(StrEnum):
    """Which failed rows ``--retry-failed`` resends."""

    FAILED = "failed"  # errors a new request can fix
    ALL = "all"  # every row without a score, permanent errors too


def failed_rows(
    files: JobFiles,
    job: JobRow,
    chunks: list[ChunkRow],
    codec: RequestCodec,
    *,
    scope: RetryScope = RetryScope.FAILED,
    only: tuple[str, ...] | None = None,
) -> set[int]:
    """Rows whose latest result is an error worth resending, or never submitted.

    ``only`` restricts the retry to those error codes (the automatic retry of rows an
    expired batch did not run).
    """
    code = pl.col("error_code")
    if only:
        wanted = code.is_in(list(only))
    elif scope is RetryScope.ALL:
        wanted = code != "skipped"
    else:
        wanted = ~permanent(code)
    rows: set[int] = set()
    answered: set[int] = set()
    for _, latest in result_windows(files, job, chunks):
        found = latest.filter(code.is_not_null() & wanted).select("row").collect()
        rows.update(found["row"].to_list())
        ok = latest.filter(code.is_null() & pl.col("response").is_not_null()).select("row")
        answered.update(ok.collect()["row"].to_list())
    if only is None:
        for chunk in chunks:
            if chunk.status in (ChunkStatus.FAILED, ChunkStatus.HALTED) and not chunk.result_file:
                # (a range, once the request files are cleaned: rows answered by another
                # chunk, such as reused answers, are not sent again)
                rows.update(_chunk_rows(files, chunk, codec) - answered)
    return rows


def _chunk_rows(files: JobFiles, chunk: ChunkRow, codec: RequestCodec) -> set[int]:
    try:
        return files.request_rows(chunk.request_file, codec)
    except FileNotFoundError:  # cleaned: every row of its range that was sent
        return set(range(chunk.first_row, chunk.last_row + 1))


def retry_mode(settings: Settings, ledger: Ledger, job: JobRow) -> ChunkMode:
    """How resent rows run: as ``run.mode`` says; with ``auto``, as the job last ran
    (a job that went direct because its server has no Batch API stays direct)."""
    mode = settings.run.mode
    if mode != "auto":
        return ChunkMode(mode)
    chunks = ledger.chunks(job.id)
    return chunks[-1].mode if chunks else ChunkMode.BATCH


def add_retry_chunks(
    settings: Settings,
    ledger: Ledger,
    job: JobRow,
    spec: RequestSpec,
    *,
    scope: RetryScope = RetryScope.FAILED,
    only: tuple[str, ...] | None = None,
    mode: ChunkMode = ChunkMode.BATCH,
    workload: Workload | None = None,
) -> int:
    """Write request files for the failed rows as new chunks; returns the row count.

    The new chunks are planned under the job's limits now in force.
    """
    files = JobFiles(settings, job.id)
    chunks = ledger.chunks(job.id)
    rows = failed_rows(files, job, chunks, spec.codec, scope=scope, only=only)
    if not rows:
        return 0
    lines = sorted(_lines(files, job, chunks, rows, spec.codec, workload))
    planner = ChunkPlanner(limits_for(settings, spec, ledger.learned_limit(job.model)))
    parts: list[list[tuple[int, str]]] = []
    for row, line in lines:
        if planner.add(row, _row_tokens(chunks, row), len(line.encode("utf-8"))):
            parts.append([])
        parts[-1].append((row, line))
    stamp = now_iso()
    new: list[ChunkRow] = []
    files.requests.mkdir(parents=True, exist_ok=True, mode=0o700)
    for offset, part in enumerate(parts):
        idx = len(chunks) + offset
        name = f"{RETRY_PREFIX}{idx + 1:04d}.jsonl"  # numbered from 1, as the tables
        path = files.request_file(name)
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
                status=ChunkStatus.PENDING,
                prepared_ref=None,
                batch_id=None,
                attempt=0,
                intent_at=None,
                error=None,
                result_file=None,
                updated_at=stamp,
                mode=mode,
            )
        )
    if only is None:
        for chunk in chunks:
            if chunk.status in (ChunkStatus.FAILED, ChunkStatus.HALTED):
                ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.RETRIED)
    ledger.add_chunks(new)
    ledger.set_job(job.id, status=JobStatus.RUNNING)
    return len(lines)


def _lines(
    files: JobFiles,
    job: JobRow,
    chunks: list[ChunkRow],
    rows: set[int],
    codec: RequestCodec,
    workload: Workload | None,
) -> Iterable[tuple[int, str]]:
    """(row, request line) of ``rows``: from the request files, else built again."""
    wanted = set(rows)
    for chunk in chunks:
        if chunk.mode is ChunkMode.REUSED:  # nothing was sent: no request file
            continue
        path = files.request_file(chunk.request_file)
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                row = row_of(codec.split_line(line)[0])
                if row in wanted:
                    wanted.discard(row)
                    yield row, line
    if wanted and workload is not None:
        if file_hash(workload.source.path) != job.input_hash:
            raise InputFileError(
                f"{workload.source.path} changed since job {job.id} graded it, and the "
                "job's request files were cleaned: its failed rows cannot be built again.",
                hint="Restore the file the job graded, or grade the new file (answers "
                "already paid for are reused, not paid again).",
            )
        for block in workload.blocks(with_lines=True):
            assert block.lines is not None
            wanted.difference_update(block.skipped)  # blank: never sent, never resent
            for row, line in zip(block.rows, block.lines, strict=True):
                if row in wanted:
                    wanted.discard(row)
                    yield row, line + "\n"
    if wanted:
        missing = ", ".join(custom_id(r, 1) for r in sorted(wanted)[:5])
        raise FileNotFoundError(f"request lines of rows {missing} are gone")


def _row_tokens(chunks: list[ChunkRow], row: int) -> int:
    """A row's tokens, pro rata of the first chunk that held it (for the caps)."""
    owner = next(c for c in chunks if c.first_row <= row <= c.last_row)
    return -(-owner.tokens // max(owner.requests, 1))
