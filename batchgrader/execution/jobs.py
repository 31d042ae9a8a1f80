"""Jobs: identity (fingerprint), their folder in the state dir, and the final merge.

A job is one input file graded with one set of request-shaping settings. Its
fingerprint hashes the input's bytes and everything that shapes the requests, so
re-running the same command finds the same job and re-attaches instead of paying again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from batchgrader import paths
from batchgrader.data.files import FORMATS, Format, atomic_path, format_of, sink_rows
from batchgrader.errors import OutputExistsError
from batchgrader.ledger.store import ChunkRow, JobRow, Ledger, now_iso
from batchgrader.planning.plans import limits_for, write_plan
from batchgrader.prompting.answers import RESULT_SCHEMA, expand_fields
from batchgrader.prompting.spec import RequestSpec
from batchgrader.prompting.workload import Workload
from batchgrader.providers.openai import requests as batchfile
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

_LEADING_ID = re.compile(r'\{"custom_id":"(row-\d+)"')


def job_dir(settings: Settings, job_id: str) -> Path:
    return paths.jobs_dir(settings.state_dir()) / job_id


def request_path(settings: Settings, job_id: str, name: str) -> Path:
    return job_dir(settings, job_id) / "requests" / name


def results_dir(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / "results"


def request_rows(settings: Settings, job_id: str, name: str) -> set[int]:
    """The input rows a chunk's request file holds (read back from its custom_ids)."""
    rows: set[int] = set()
    with request_path(settings, job_id, name).open(encoding="utf-8") as handle:
        for line in handle:  # every line starts with its custom_id: no need to parse it all
            match = _LEADING_ID.match(line)
            row = batchfile.row_of(match.group(1) if match else json.loads(line)["custom_id"])
            if row is not None:
                rows.add(row)
    return rows


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def request_settings(spec: RequestSpec, settings: Settings) -> dict[str, object]:
    """Everything that shapes the requests and the plan (the fingerprint's input)."""
    prompt = spec.prompt
    return {
        "model": spec.options.model,
        "endpoint": spec.options.endpoint,
        "max_tokens": spec.options.max_tokens,
        "temperature": spec.options.temperature,
        "structured": spec.options.structured,
        "system": prompt.system.source,
        "user": prompt.user.source,
        "examples": hashlib.sha256(prompt.examples.encode()).hexdigest(),
        "scale": [prompt.scale.min, prompt.scale.max],
        "reasoning": prompt.reasoning,
        "schema": prompt.schema,
        "column": spec.text_column,
        "format": spec.format,
        "split_token_limit": settings.chunking.split_token_limit,
        "split_row_limit": settings.chunking.split_row_limit,
        "force_chunk_count": settings.chunking.force_chunk_count,
        "max_enqueued_tokens": settings.run.max_enqueued_tokens.get(spec.options.model),
    }


def fingerprint(input_hash: str, shaping: dict[str, object]) -> str:
    blob = json.dumps({"input": input_hash, "requests": shaping}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def new_job(
    workload: Workload,
    spec: RequestSpec,
    settings: Settings,
    ledger: Ledger,
    input_hash: str,
    fp: str,
) -> JobRow:
    """Plan the chunks, write their request files in the job folder, record the job."""
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    folder = job_dir(settings, job_id)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the jobs folder too
    folder.mkdir(exist_ok=True, mode=0o700)
    limits = limits_for(settings, spec.options.model, ledger.learned_limit(spec.options.model))
    try:
        plan = write_plan(
            workload,
            limits,
            folder / "requests",
            force_chunk_count=settings.chunking.force_chunk_count,
        )
    except BaseException:  # no job is recorded: leave no folder behind either
        shutil.rmtree(folder, ignore_errors=True)
        raise
    stamp = now_iso()
    job = JobRow(
        id=job_id,
        fingerprint=fp,
        input_path=str(workload.source.path.resolve()),
        input_hash=input_hash,
        model=spec.options.model,
        endpoint=spec.options.endpoint,
        request_settings=json.dumps(request_settings(spec, settings), default=str),
        output_path=None,
        status="running",
        rows=workload.source.rows,
        created_at=stamp,
        updated_at=stamp,
    )
    chunks = [
        ChunkRow(
            job_id=job_id,
            idx=c.index,
            first_row=c.first_row,
            last_row=c.last_row,
            requests=c.requests,
            tokens=c.tokens,
            bytes=c.bytes,
            request_file=c.file,
            status="pending",
            input_file_id=None,
            batch_id=None,
            attempt=0,
            intent_at=None,
            error=None,
            result_file=None,
            updated_at=stamp,
        )
        for c in plan.chunks
    ]
    ledger.add_job(job, chunks)
    return job


def output_path(
    source: Path, settings: Settings, explicit: Path | None, fmt: Format | None, overwrite: bool
) -> Path:
    """Where the graded file goes; an existing file gets a timestamped sibling."""
    if explicit is not None:
        target = explicit
    else:
        ext = source.suffix if fmt is None else _extension(fmt)
        target = settings.paths.output_dir / f"{source.stem}.graded{ext}"
    if target.exists() and not overwrite:
        if explicit is not None:
            raise OutputExistsError(
                f"{target} exists.", hint="Pass --overwrite, or choose another --output."
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = fresh = target.with_name(f"{target.stem}-{stamp}{target.suffix}")
        n = 1
        while fresh.exists():  # two runs in the same second: never replace the first
            n += 1
            fresh = base.with_name(f"{base.stem}-{n}{base.suffix}")
        log.warning("%s exists: writing %s instead (--overwrite to replace it).", target, fresh)
        target = fresh
    return target


def _extension(fmt: Format) -> str:
    return next(ext for ext, f in FORMATS.items() if f == fmt)


class RunSummary(BaseModel):
    """The outcome of one graded file."""

    job_id: str
    input: str
    output: str | None
    status: str
    rows: int
    graded: int
    failed: int
    skipped: int
    invalid_answers: int
    score_counts: dict[str, int]
    chunks: int
    chunks_failed: int
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost: str | None = None
    errors: list[str] = []


#: Rows per window when a job's results are read back: memory follows one window's
#: results (a batch holds at most 50,000 rows), not the size of the input.
WINDOW_ROWS = 50_000


def results_kept(settings: Settings, job: JobRow, chunks: list[ChunkRow]) -> bool:
    """Whether every collected chunk's row results are still on disk."""
    folder = results_dir(settings, job.id)
    return all((folder / c.result_file).exists() for c in chunks if c.result_file)


def result_windows(
    settings: Settings, job: JobRow, chunks: list[ChunkRow]
) -> Iterator[tuple[int, pl.LazyFrame]]:
    """(first row, latest result of each row in the window), a window of rows at a time.

    A retried row's latest result wins. Row ``r`` of the input is row ``r`` of the
    job; the windows cover ``0..job.rows`` (at least one, possibly empty). Each
    chunk's result file holds one contiguous range of rows, so a window's filter
    skips every file outside it from the file's statistics.
    """
    folder = results_dir(settings, job.id)
    files = [folder / c.result_file for c in chunks if c.result_file]
    for first in range(0, max(job.rows, 1), WINDOW_ROWS):
        last = min(job.rows, first + WINDOW_ROWS) - 1
        if not files:
            yield first, pl.LazyFrame(schema=RESULT_SCHEMA)
            continue
        found = pl.scan_parquet(files).filter(pl.col("row").is_between(first, last))
        yield first, found.unique(subset="row", keep="last", maintain_order=True)


@contextmanager
def aligned_results(
    settings: Settings, job: JobRow, chunks: list[ChunkRow]
) -> Iterator[pl.LazyFrame]:
    """Every row's latest result, one row per input row in input order.

    Staged on disk a window at a time under the job folder (removed on exit), so the
    final merge is a row-by-row zip of two streams instead of a join holding every
    result in memory. The frame has the result columns without ``row``.
    """
    folder = job_dir(settings, job.id) / "aligned"
    shutil.rmtree(folder, ignore_errors=True)  # left by a crash during an earlier merge
    folder.mkdir(mode=0o700)
    try:
        for first, found in result_windows(settings, job, chunks):
            end = min(job.rows, first + WINDOW_ROWS)
            window = pl.select(pl.int_range(first, end, dtype=pl.Int64).alias("row")).lazy()
            path = folder / f"rows-{first:012d}.parquet"
            window.join(found, on="row", how="left", maintain_order="left").drop(
                "row"
            ).sink_parquet(path)
            os.chmod(path, 0o600)
        yield pl.scan_parquet(sorted(folder.glob("rows-*.parquet")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_output(
    workload: Workload,
    spec: RequestSpec,
    chunks: list[ChunkRow],
    results: pl.LazyFrame,
    target: Path,
    out_format: Format | None,
) -> None:
    """Zip the row-aligned ``results`` onto the input, in input order; write atomically.

    An input column named like an output column (a graded file graded again) is
    replaced by this run's, with a warning.
    """
    halted_error = "not_run: the job stopped before this row's chunk was submitted"
    unrun = pl.lit(halted_error)
    for chunk in chunks:  # a chunk whose batch failed (validation): its rows carry its error
        if chunk.status == "failed" and not chunk.result_file and chunk.error:
            in_chunk = pl.col("_row").is_between(chunk.first_row, chunk.last_row)
            unrun = pl.when(in_chunk).then(pl.lit(chunk.error)).otherwise(unrun)
    text = pl.col(spec.text_column).cast(pl.String)  # an all-null column is Null-typed
    source = workload.source.scan().with_columns(
        (text.is_null() | (text.str.strip_chars() == "")).alias("_blank")
    )
    ours = set(expand_fields(results, spec.prompt).collect_schema().names())
    clashing = [name for name in workload.source.columns if name in ours]
    if clashing:
        log.warning(
            "%s already has %s: the output has this run's instead.",
            workload.source.path,
            ", ".join(clashing),
        )
        source = source.drop(clashing)
    merged = pl.concat([source.with_row_index("_row"), results], how="horizontal").with_columns(
        pl.when(pl.col("llm_error").is_null() & pl.col("llm_response").is_null() & pl.col("_blank"))
        .then(pl.lit("skipped: empty text"))
        .when(pl.col("llm_error").is_null() & pl.col("llm_response").is_null())
        .then(unrun)
        .otherwise(pl.col("llm_error"))
        .alias("llm_error")
    )
    merged = expand_fields(merged, spec.prompt).drop("_row", "_blank")
    fmt = out_format or format_of(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        sink_rows(merged, tmp, fmt)


def remove_temporary_files(settings: Settings, job_id: str) -> None:
    """Drop a finished job's request files and raw downloads; keep its row results."""
    shutil.rmtree(job_dir(settings, job_id) / "requests", ignore_errors=True)
    for raw in results_dir(settings, job_id).glob("*.jsonl"):
        raw.unlink(missing_ok=True)


def remove_job_files(settings: Settings, job_id: str) -> None:
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
