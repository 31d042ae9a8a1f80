"""The end of a job's run: its graded file written, its final status set.

The results are merged in input order into a copy of the input (atomically, never over
a file the run does not own), with an error log beside it when chunks failed. When the
input changed while the batches ran, nothing is merged by position: the results are
written against the job's own copy of the rows it sent. A finished job whose stored
results were cleaned is summarised from its graded file, copied where this run writes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from batchgrader.data.atomic import atomic_path
from batchgrader.data.formats import format_of
from batchgrader.data.reading import scan_table
from batchgrader.data.writing import sink_rows
from batchgrader.errors import UsageError
from batchgrader.execution.identity import file_hash
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.merge import aligned_results, write_output
from batchgrader.execution.prepare import Prepared
from batchgrader.execution.recovery import what_changed, write_recovered
from batchgrader.execution.reuse import remember
from batchgrader.execution.session import Session
from batchgrader.execution.summary import RowTally, RunSummary, summarise
from batchgrader.ledger.records import ChunkRow, ChunkStatus, JobStatus

log = logging.getLogger(__name__)


def write_graded(
    s: Session, item: Prepared, chunks: list[ChunkRow], notes: list[str]
) -> RunSummary:
    """Write the job's graded file (or, when its input changed while it ran, the
    recovered one) and its error log, and set its final status."""
    job, target, workload = item.job, item.target, item.workload
    files = JobFiles(s.settings, job.id)
    remember(s.ledger, files, job, chunks)  # its answers, for any later job to reuse
    source = workload.source.path
    if not source.exists() or file_hash(source) != job.input_hash:
        # The input changed while the batches ran: never merge by position.
        what = what_changed(source, workload.source.format, job)
        path, tally = write_recovered(files, job, s.spec, chunks, target)
        notes.append(
            f"{source} changed while job {job.id} ran ({what}): nothing paid is lost, "
            f"the results were written against the job's own copy of the rows it sent "
            f"(row number, graded text, result) to {path}; {target.path} was not written"
        )
        s.ledger.set_job(job.id, status=JobStatus.FAILED, output_path=str(path))
        summary = summarise(job, chunks, tally, s.ledger, str(path), "failed", notes=notes)
        summary.errors.append(notes[-1])
        return summary
    with aligned_results(files, job, chunks) as results:
        replaced = write_output(
            workload.source,
            s.spec.text_column,
            s.spec.prompt,
            chunks,
            results,
            target.path,
            target.format,
        )
        tally = RowTally.of(results)
    if replaced:
        log.warning(
            "%s already has %s: the output has this run's instead.",
            workload.source.path,
            ", ".join(replaced),
        )
    failed = any(c.status in (ChunkStatus.FAILED, ChunkStatus.HALTED) for c in chunks)
    status = JobStatus.FAILED if failed else JobStatus.DONE
    s.ledger.set_job(job.id, status=status, output_path=str(target.path))
    summary = summarise(job, chunks, tally, s.ledger, str(target.path), status, notes=notes)
    errors_log = target.path.with_name(target.path.name + ".errors.log")
    lines = [line for line in summary.errors if line.strip()]
    if lines:  # one line per chunk error (docs/commands.md, "The error log")
        errors_log.write_text("\n".join(lines) + "\n", encoding="utf-8")
        summary.error_log = str(errors_log)
    else:
        errors_log.unlink(missing_ok=True)
        if not (failed or summary.failed):
            files.remove_temporary()
    return summary


def copy_finished(s: Session, item: Prepared, notes: list[str]) -> RunSummary:
    """A finished job whose stored results were cleaned: summarise from its graded file,
    and copy that file where this run writes (the same rows and answers)."""
    job, target = item.job, item.target
    chunks = s.ledger.chunks(job.id)
    written = Path(job.output_path) if job.output_path else None
    if written is None or not written.exists():
        raise UsageError(
            f"Job {job.id} is finished, and both its stored results and its graded file "
            f"({written}) are gone.",
            hint="Pass --force to grade the file again.",
        )
    if target.path != written:
        target.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target.path) as tmp:
            if format_of(written) == target.format:  # the same bytes
                shutil.copyfile(written, tmp)
            else:
                sink_rows(scan_table(written, format_of(written)), tmp, target.format)
    tally = RowTally.of_graded_file(written, None, job.id)
    return summarise(job, chunks, tally, s.ledger, str(target.path), job.status, notes=notes)
