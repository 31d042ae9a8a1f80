"""The run's summary (``grade``, ``jobs resume``): rows, tokens and dollars per file,
then each file's graded file, scores and first errors.
"""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group, RenderableType
from rich.text import Text

from batchgrader.execution.session import RunReport
from batchgrader.execution.summary import RunSummary
from batchgrader.render.fit import FitTable, soft
from batchgrader.render.values import money, name

_STATUS_STYLE = {"done": "green", "submitted": "yellow"}


def summary_table(summaries: RunReport) -> Group:
    """Rows, then tokens and dollars, per file; each output path on its own line."""
    rows = FitTable("Run summary", shrink=("invalid", "skipped", "chunks", "file"))
    rows.column("file", "path")
    rows.column("status")
    rows.column("chunks", "num")
    for title in ("graded", "failed", "skipped", "invalid"):
        rows.column(title, "num")
    usage = FitTable("Tokens and cost", shrink=("cached", "file"))
    usage.column("file", "path")
    for title in ("input tokens", "cached", "output tokens", "cost"):
        usage.column(title, "num")
    for s in summaries.files:
        style = _STATUS_STYLE.get(s.status, "red")
        rows.row(
            name(s.input),
            Text(s.status, style=style),
            f"{s.chunks - s.chunks_failed}/{s.chunks}",
            f"{s.graded:,}",
            f"{s.failed:,}",
            f"{s.skipped:,}",
            f"{s.invalid_answers:,}",
        )
        usage.row(
            name(s.input),
            f"{s.input_tokens:,}",
            f"{s.cached_tokens:,}",
            f"{s.output_tokens:,}",
            money(s.cost) if s.cost is not None else "-",
        )
    parts: list[RenderableType] = [rows, usage]
    for s in summaries.files:
        parts.extend(_file_notes(s, several=len(summaries.files) > 1))
    if summaries.today_cost is not None:
        parts.append(Text(f"Spent today (all runs): {money(summaries.today_cost)}", style="dim"))
    return Group(*parts)


def _file_notes(s: RunSummary, *, several: bool) -> list[RenderableType]:
    """A file's output path, score distribution, first errors and error log."""
    parts: list[RenderableType] = []
    of = f" of {name(s.input)}" if several else ""
    if s.output:
        parts += [Text(f"Graded file{of}:"), soft(f"  {s.output}", "bold")]
    else:
        parts.append(Text(f"Job{of}: {s.job_id}"))
    if s.score_counts:
        top = max(s.score_counts.values())
        dist = FitTable(f"Scores{of}")
        dist.column("score")
        dist.column("rows", "num")
        dist.column("")
        for score, n in s.score_counts.items():
            dist.row(score, f"{n:,}", Text("█" * max(1, round(30 * n / top)), style="cyan"))
        if s.invalid_answers:
            dist.row("invalid", f"{s.invalid_answers:,}", "")
        parts.append(dist)
    parts.extend(Text(f"  {error}", style="red") for error in s.errors[:5])
    if s.reused:
        paid = f" (they cost {money(Decimal(s.reused_cost))} then)" if s.reused_cost else ""
        parts.append(
            Text(f"  {s.reused:,} row(s) reused answers paid for before{paid}.", style="dim")
        )
    if s.error_log:
        parts += [Text("Every chunk error is in:"), soft(f"  {s.error_log}")]
    parts.extend(Text(f"  {note}") for note in s.notes)
    return parts
