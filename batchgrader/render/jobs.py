"""The tables of the ``jobs`` commands: the job list, one job's chunks, what ``jobs
clean`` removed and which learned limits ``jobs forget-limits`` dropped.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from batchgrader.execution.listing import JobDetail, JobList
from batchgrader.execution.maintenance import CleanReport, ForgottenLimits
from batchgrader.render.fit import FitTable, soft
from batchgrader.render.values import duration, money, name


def jobs_table(report: JobList) -> RenderableType:
    if not report.jobs:
        return Text("No jobs. (--all includes finished ones.)")
    table = FitTable("Jobs", shrink=("age", "model", "chunks", "cost", "file", "id"))
    table.column("id", "id")
    table.column("file", "path")
    table.column("model")
    table.column("status")
    table.column("chunks", "num")
    table.column("rows", "num")
    table.column("cost", "num")
    table.column("age", "num")
    for j in report.jobs:
        table.row(
            j.id,
            name(j.file),
            j.model,
            j.status,
            f"{j.chunks_done}/{j.chunks}",
            f"{j.rows:,}",
            money(j.cost) if j.cost is not None else "-",
            duration(j.age_seconds),
        )
    return table


def job_detail_table(report: JobDetail) -> RenderableType:
    j = report.job
    table = FitTable(
        f"Job {j.id}: {name(j.file)} ({j.model}, {j.status})",
        caption=[Text("Input:"), soft(f"  {j.file}")]
        + ([Text("Graded file:"), soft(f"  {j.output}")] if j.output else []),
        shrink=("requests", "tokens", "batch", "rows", "failed", "error"),
    )
    table.column("chunk", "num")
    table.column("rows")
    table.column("requests", "num")
    table.column("tokens", "num")
    table.column("status")
    table.column("batch", "id")
    table.column("done", "num")
    table.column("failed", "num")
    table.column("error", "wrap", style="red")
    for c in report.chunks:
        table.row(
            str(c.chunk),
            f"{c.first_row:,}-{c.last_row:,}",
            f"{c.requests:,}",
            f"{c.tokens:,}",
            c.status,
            c.batch_id or ("-" if c.mode == "batch" else c.mode),
            f"{c.completed:,}",
            f"{c.failed:,}",
            c.error or "",
        )
    return table


def clean_report(report: CleanReport) -> Text:
    text = Text(
        f"Removed the files of {len(report.removed)} finished job(s); kept the row results "
        f"of {len(report.kept_for_retry)} job(s) with failed rows (for --retry-failed)."
    )
    if report.remote_files_deleted:
        text.append(f"\nDeleted {report.remote_files_deleted} file(s) left at the provider.")
    return text


def forgotten_limits(report: ForgottenLimits) -> Text:
    if not report.forgotten:
        return Text("No learned enqueued-token limit to forget.")
    lines = [f"Forgot {model}: {tokens:,} tokens" for model, tokens in report.forgotten.items()]
    return Text("\n".join(lines))
