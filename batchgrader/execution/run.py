"""``grade`` for one file: find or start its job, run it, merge, summarise."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from batchgrader.data import files as datafiles
from batchgrader.data.files import Format
from batchgrader.errors import InputFileError, UsageError
from batchgrader.execution import jobs
from batchgrader.execution.batch import FINISHED, ChunkEvent, Clock, Identity, Runner
from batchgrader.execution.resubmit import RETRY_PREFIX, add_retry_chunks
from batchgrader.ledger.store import ChunkRow, JobRow, Ledger
from batchgrader.money.pricing import PriceTable
from batchgrader.prompting.prompts import Prompt, Scale, Template
from batchgrader.prompting.spec import RequestSpec
from batchgrader.prompting.tokens import Counter
from batchgrader.prompting.workload import Workload
from batchgrader.providers.base import BatchAPI
from batchgrader.providers.openai.requests import RequestOptions
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: Row errors resubmitted automatically (up to ``run.max_retries_per_row`` times).
AUTO_RETRIED = ("batch_expired",)


class RunReport(BaseModel):
    """Every file of one ``grade`` run."""

    files: list[jobs.RunSummary]
    today_cost: str | None = None


@dataclass(frozen=True)
class GradeOptions:
    output: Path | None = None
    output_format: Format | None = None
    overwrite: bool = False
    force: bool = False
    detach: bool = False
    retry_failed: bool = False


def find_or_create_job(
    workload: Workload, spec: RequestSpec, settings: Settings, ledger: Ledger, force: bool
) -> tuple[JobRow, bool]:
    """The job of this exact input and request settings; (job, newly created)."""
    input_hash = jobs.file_hash(workload.source.path)
    fp = jobs.fingerprint(input_hash, jobs.request_settings(spec, settings))
    job = ledger.job_by_fingerprint(fp)
    if job is not None and not force:
        return job, False
    if job is not None:
        ledger.set_job(job.id, status="superseded")
    return jobs.new_job(workload, spec, settings, ledger, input_hash, fp), True


def grade_file(
    workload: Workload,
    job: JobRow,
    spec: RequestSpec,
    settings: Settings,
    ledger: Ledger,
    client: BatchAPI,
    identity: Identity,
    options: GradeOptions,
    *,
    on_event: Callable[[ChunkEvent], None],
    clock: Clock | None = None,
) -> jobs.RunSummary:
    """Run (or re-attach to) a job and write the graded file."""
    written = Path(job.output_path) if job.output_path else None
    elsewhere = options.output is not None and (
        written is None or options.output.resolve() != written.resolve()
    )
    if job.status == "done" and written is not None and written.exists() and not elsewhere:
        log.info("Job %s already finished: %s", job.id, job.output_path)
        chunks = ledger.chunks(job.id)
        tally = _finished_tally(settings, job, chunks, written, options.output_format)
        return summarise(job, chunks, tally, ledger, job.output_path, "done")
    if options.output is not None:  # an existing --output fails now, before anything is paid
        jobs.output_path(
            workload.source.path, settings, options.output, options.output_format, options.overwrite
        )
    finished = elsewhere and job.status == "done"  # another copy of a finished job's output
    if finished and not jobs.results_kept(settings, job, ledger.chunks(job.id)):
        raise UsageError(
            f"Job {job.id} is finished and its stored results were cleaned up.",
            hint=f"Its output is {written}; pass --force to grade again.",
        )
    runner = Runner(client, ledger, settings, spec, identity, on_event=on_event, clock=clock)
    chunks = runner.run(job, detach=options.detach)
    for _ in range(0 if options.detach else settings.run.max_retries_per_row):
        if any(c.status not in FINISHED for c in chunks):
            break
        resent = add_retry_chunks(settings, ledger, job, only=AUTO_RETRIED)
        if not resent:
            break
        log.warning("Resubmitting %d row(s) an expired batch did not run.", resent)
        chunks = runner.run(job)
    if any(c.status not in FINISHED for c in chunks):
        return summarise(job, chunks, None, ledger, None, "submitted")
    target = jobs.output_path(
        workload.source.path, settings, options.output, options.output_format, options.overwrite
    )
    with jobs.aligned_results(settings, job, chunks) as results:
        jobs.write_output(workload, spec, chunks, results, target, options.output_format)
        tally = Tally.of(results)
    failed = any(c.status in ("failed", "halted") for c in chunks)
    status = "failed" if failed else "done"
    ledger.set_job(job.id, status=status, output_path=str(target))
    summary = summarise(job, chunks, tally, ledger, str(target), status)
    if failed or summary.failed:
        errors_log = target.with_name(target.name + ".errors.log")
        errors_log.write_text("\n".join(summary.errors) + "\n", encoding="utf-8")
    else:  # nothing left to retry: the request files and raw downloads have done their job
        jobs.remove_temporary_files(settings, job.id)
    return summary


@dataclass(frozen=True)
class Tally:
    """How a job's rows came out: graded rows, unparseable answers, graded rows by score."""

    graded: int
    invalid: int
    scores: dict[str, int]

    @classmethod
    def of(cls, results: pl.LazyFrame) -> Tally:
        """Count the rows of ``results`` that have a result, in one streaming aggregation."""
        error = pl.col("llm_error")
        counts = (
            results.filter(error.is_not_null() | pl.col("llm_response").is_not_null())
            .group_by(
                error.is_null().alias("ok"),
                error.str.starts_with("unparseable").fill_null(False).alias("invalid"),
                "llm_score",
            )
            .len()
            .collect()
        )
        ok = counts.filter("ok").group_by("llm_score").agg(pl.col("len").sum()).sort("llm_score")
        return cls(
            graded=int(ok["len"].sum()),
            invalid=int(counts.filter("invalid")["len"].sum()),
            scores={str(score): int(n) for score, n in ok.iter_rows()},
        )


def _finished_tally(
    settings: Settings, job: JobRow, chunks: list[ChunkRow], written: Path, fmt: Format | None
) -> Tally:
    """How a finished job's rows came out: from its stored results, or from its graded
    file when ``jobs clean`` has removed those."""
    if jobs.results_kept(settings, job, chunks):
        with jobs.aligned_results(settings, job, chunks) as results:
            return Tally.of(results)
    try:
        graded = datafiles.scan_table(written, fmt or datafiles.format_of(written))
        columns = [  # CSV/TSV: text, and an empty field is a null
            pl.when(value.str.strip_chars() != "").then(value).alias(name)
            for name in ("llm_score", "llm_response", "llm_error")
            for value in [pl.col(name).cast(pl.String)]
        ]
        read = graded.select(columns).with_columns(pl.col("llm_score").cast(pl.Int64))
        return Tally.of(read)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(
            f"Job {job.id} is finished, its stored results were cleaned up, and its "
            f"output {written} cannot be read back ({exc}).",
            hint="Pass --force to grade the file again.",
        ) from None


def summarise(
    job: JobRow,
    chunks: list[ChunkRow],
    tally: Tally | None,
    ledger: Ledger,
    output: str | None,
    status: str,
) -> jobs.RunSummary:
    requests = sum(c.requests for c in chunks if not c.request_file.startswith(RETRY_PREFIX))
    graded = failed = invalid = 0
    counts: dict[str, int] = {}
    if tally is not None:
        graded, invalid, counts = tally.graded, tally.invalid, tally.scores
        failed = requests - graded  # every sent row: halted, refused or failed chunks too
    events = [e for e in ledger.usage_events(job_id=job.id) if not e.committed]
    total_cost = sum((e.cost for e in events if e.cost is not None), Decimal(0))
    errors = [
        f"chunk {c.idx + 1}: {c.error}"
        for c in chunks
        if c.error and (failed or c.status in ("failed", "halted"))
    ]
    return jobs.RunSummary(
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
        chunks=len(chunks),
        chunks_failed=sum(1 for c in chunks if c.status == "failed"),
        input_tokens=sum(e.input_tokens for e in events),
        cached_tokens=sum(e.cached_input_tokens for e in events),
        output_tokens=sum(e.output_tokens for e in events),
        cost=str(total_cost) if events else None,
        errors=errors,
    )


def spec_of_job(job: JobRow, settings: Settings) -> RequestSpec:
    """The request spec a job was created with (to resume it without its flags)."""
    stored = json.loads(job.request_settings)
    scale = Scale(*stored["scale"])
    prompt = Prompt(
        name="(stored)",
        system=Template.parse(stored["system"], "stored system template"),
        user=Template.parse(stored["user"], "stored user template"),
        scale=scale,
        reasoning=stored["reasoning"],
        schema=stored["schema"],
    )
    options = RequestOptions(
        model=stored["model"],
        endpoint=stored["endpoint"],
        max_tokens=stored["max_tokens"],
        temperature=stored["temperature"],
        structured=stored["structured"],
    )
    return RequestSpec(
        prompt=prompt,
        options=options,
        counter=Counter.for_model(stored["model"]),
        price=PriceTable.load(settings.paths.pricing_file).find(stored["model"]),
        text_column=stored["column"],
        format=stored["format"],
        fail_on_empty=False,
    )
