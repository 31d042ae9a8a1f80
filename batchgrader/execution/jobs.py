"""Jobs: found by identity or created (planned, request files written, recorded).

A job is one input file graded with one set of request settings. Creating one plans
its chunks, writes their request files in the job's folder, keeps a copy of the rows it
sends (row number and graded text: the results can always be matched to them, even if
the input changes while batches run), and records it all in the ledger in one step.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from datetime import UTC, datetime

import polars as pl

from batchgrader.execution.identity import file_hash, fingerprint
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.reuse import Reuse
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, JobStatus
from batchgrader.ledger.store import Ledger, now_iso
from batchgrader.planning.measure import calibrate, measure
from batchgrader.planning.plans import limits_for, write_plan
from batchgrader.planning.spec import RequestSpec, StoredRequest
from batchgrader.planning.workload import Workload
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: The job's copy of the rows it sends: row number and graded text.
ROWS_FILE = "rows.parquet"


def identity_of(workload: Workload, spec: RequestSpec) -> tuple[str, str]:
    """(input hash, fingerprint) of grading ``workload`` with ``spec``."""
    input_hash = file_hash(workload.source.path)
    return input_hash, fingerprint(input_hash, StoredRequest.of(spec))


def find_job(ledger: Ledger, fp: str) -> JobRow | None:
    """The live job of this identity, if there is one."""
    return ledger.job_by_fingerprint(fp)


def new_job(
    workload: Workload,
    spec: RequestSpec,
    settings: Settings,
    ledger: Ledger,
    input_hash: str,
    fp: str,
    *,
    mode: ChunkMode = ChunkMode.BATCH,
    reuse_scope: str | None = None,
    lookup: bool = True,
) -> JobRow:
    """Plan the chunks, write their request files and the rows' copy, record the job.

    ``mode`` is how its chunks run (a Batch API, or direct calls). With ``reuse_scope``
    (where the requests go), each row's request key is kept and, with ``lookup``, rows
    answered before are not planned: their answers are copied in as done chunks of mode
    ``reused`` (``execution.reuse``).
    """
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    files = JobFiles(settings, job_id)
    files.folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.folder.mkdir(exist_ok=True, mode=0o700)
    limits = limits_for(settings, spec, ledger.learned_limit(spec.options.model))
    figure = measure(workload, spec)  # providers without an exact offline tokenizer
    if figure is not None:
        calibrate(workload, figure, upper=True)  # plans and budgets use the upper bound
        log.info(
            "%s: %s input tokens (%s, by %s); planned at the upper bound, %s.",
            workload.source.path.name,
            f"{figure.total:,}",
            figure.label,
            figure.method,
            f"{figure.high:,}",
        )
    reuse = None
    if reuse_scope is not None:
        reuse = Reuse(ledger, files, reuse_scope, workload.id_width, lookup=lookup)
    try:
        plan = write_plan(
            workload,
            limits,
            files.requests,
            force_chunk_count=settings.chunking.force_chunk_count,
            leave_out=reuse,
        )
        keep_rows(workload, files)
        reused = reuse.chunks(job_id, len(plan.chunks)) if reuse is not None else []
    except BaseException:  # no job is recorded: leave no folder behind either
        shutil.rmtree(files.folder, ignore_errors=True)
        raise
    stamp = now_iso()
    job = JobRow(
        id=job_id,
        fingerprint=fp,
        input_path=str(workload.source.path.resolve()),
        input_hash=input_hash,
        model=spec.options.model,
        endpoint=spec.options.endpoint,
        request_settings=StoredRequest.of(spec).model_dump_json(),
        output_path=None,
        status=JobStatus.RUNNING,
        rows=workload.source.rows,
        created_at=stamp,
        updated_at=stamp,
        provider=spec.provider.name,
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
        for c in plan.chunks
    ]
    ledger.add_job(job, chunks + reused)
    return job


def keep_rows(workload: Workload, files: JobFiles) -> None:
    """Stream the row numbers and graded texts into the job's folder."""
    rows = workload.source.scan([workload.text_column]).select(
        pl.col(workload.text_column).cast(pl.String).alias("text")
    )
    rows.with_row_index("row").sink_parquet(files.folder / ROWS_FILE)
