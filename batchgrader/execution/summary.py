"""How a job came out: rows graded, failed (worth resending) and invalid (answered, but
not usable: resending cannot change it), the scores, tokens and dollars."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from batchgrader.data.formats import Format, format_of
from batchgrader.data.reading import scan_table
from batchgrader.errors import InputFileError
from batchgrader.execution.pilot import PilotReport
from batchgrader.execution.results import permanent
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow
from batchgrader.ledger.store import Ledger

#: Request files of chunks that resend rows (their rows are counted once, in the first).
RETRY_PREFIX = "retry-"


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
    #: USD of the collected batches (None: nothing priced was collected).
    cost: Decimal | None = None
    errors: list[str] = []
    #: The ``*.errors.log`` written beside the output (None: no errors, no file).
    error_log: str | None = None
    #: Rows answered before (by this or another job) whose paid answers were reused.
    reused: int = 0
    #: What those answers cost when they were paid (dollars; None: unpriced).
    reused_cost: Decimal | None = None
    notes: list[str] = []
    #: What the pilot found (``grade --pilot N``).
    pilot: PilotReport | None = None


@dataclass(frozen=True)
class RowTally:
    """How a job's rows came out: graded, invalid (a permanent error), graded by score."""

    graded: int
    invalid: int
    scores: dict[str, int]

    @classmethod
    def of(cls, results: pl.LazyFrame) -> RowTally:
        """Count the rows of ``results`` that have a result, in one streaming aggregation."""
        code = pl.col("error_code")
        counts = (
            results.filter(
                (code.is_not_null() | pl.col("response").is_not_null())
                & (code.fill_null("") != "skipped")  # never sent: not a result
            )
            .group_by(
                code.is_null().alias("ok"),
                permanent(code).fill_null(False).alias("invalid"),
                "score",
            )
            .len()
            .collect()
        )
        ok = counts.filter("ok").group_by("score").agg(pl.col("len").sum()).sort("score")
        return cls(
            graded=int(ok["len"].sum()),
            invalid=int(counts.filter("invalid")["len"].sum()),
            scores={str(score): int(n) for score, n in ok.iter_rows()},
        )

    @classmethod
    def of_graded_file(cls, path: Path, fmt: Format | None, job_id: str) -> RowTally:
        """The tally of a graded file (a finished job whose stored results were cleaned)."""
        try:
            graded = scan_table(path, fmt or format_of(path))
            text = [  # CSV/TSV: text, and an empty field is a null
                pl.when(value.str.strip_chars() != "").then(value).alias(name)
                for name in ("llm_score", "llm_response", "llm_error")
                for value in [pl.col(name).cast(pl.String)]
            ]
            read = graded.select(text).select(
                pl.col("llm_score").cast(pl.Int64).alias("score"),
                pl.col("llm_response").alias("response"),
                pl.col("llm_error").str.split(":").list.first().alias("error_code"),
            )
            return cls.of(read)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputFileError(
                f"Job {job_id} is finished, its stored results were cleaned up, and its "
                f"output {path} cannot be read back ({exc}).",
                hint="Pass --force to grade the file again.",
            ) from None


def summarise(
    job: JobRow,
    chunks: list[ChunkRow],
    tally: RowTally | None,
    ledger: Ledger,
    output: str | None,
    status: str,
    *,
    notes: list[str] | None = None,
) -> RunSummary:
    requests = sum(c.requests for c in chunks if not c.request_file.startswith(RETRY_PREFIX))
    sent = [c for c in chunks if c.mode is not ChunkMode.REUSED]
    graded = failed = invalid = 0
    counts: dict[str, int] = {}
    if tally is not None:
        graded, invalid, counts = tally.graded, tally.invalid, tally.scores
        failed = requests - graded - invalid  # halted, refused and failed chunks too
    events = [e for e in ledger.usage_events(job_id=job.id) if not e.committed]
    total_cost = sum((e.cost for e in events if e.cost is not None), Decimal(0))
    errors = [
        f"chunk {c.idx + 1}: {c.error}"
        for c in chunks
        if c.error and (failed or c.status in (ChunkStatus.FAILED, ChunkStatus.HALTED))
    ]
    return RunSummary(
        job_id=job.id,
        input=job.input_path,
        output=output,
        status=status,
        rows=job.rows,
        graded=graded,
        failed=failed,
        skipped=job.rows - requests,
        invalid_answers=invalid,
        score_counts=counts,
        chunks=len(sent),
        chunks_failed=sum(1 for c in sent if c.status is ChunkStatus.FAILED),
        input_tokens=sum(e.input_tokens for e in events),
        cached_tokens=sum(e.cached_input_tokens for e in events),
        output_tokens=sum(e.output_tokens for e in events),
        cost=total_cost if events else None,
        errors=errors,
        notes=notes or [],
        pilot=PilotReport.model_validate_json(job.pilot) if job.pilot else None,
    )
