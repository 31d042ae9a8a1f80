"""Pure renderers: a result model in, a rich renderable out.

Every table is a ``FitTable`` (render/fit.py): on a terminal it fits the width (its
``shrink`` order says what gives way first; numbers, ids and paths are never cut), and
elsewhere it prints as plain aligned lines. Long paths are printed on their own line.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import PurePath

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from batchgrader.config_report import ConfigReport, PathReport
from batchgrader.execution.listing import JobDetail, JobList
from batchgrader.execution.maintenance import CleanReport, ForgottenLimits
from batchgrader.execution.pilot import PilotedCount, PilotedDryRun, PilotReport
from batchgrader.execution.session import RunReport
from batchgrader.execution.summary import RunSummary
from batchgrader.money.costs import CostReport, Usage
from batchgrader.money.export import ExportResult
from batchgrader.planning.estimate import CountReport
from batchgrader.planning.plans import DryRun
from batchgrader.planning.splitting import SplitReport
from batchgrader.render.fit import FitTable, Kind, Long, soft


def name(path: str) -> str:
    """The file name of a path (what a table shows; the full path is printed apart)."""
    return PurePath(path).name or path


def money(value: Decimal | None) -> str:
    """Dollars for people, rounded by size (exact values are in --json)."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0.00"
    if value < Decimal("0.01"):
        return f"${value:.6f}"
    if value < 1:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h07m``, ``2d04h``: the two largest units."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


# --- config -----------------------------------------------------------------------------


def settings_table(report: ConfigReport) -> FitTable:
    table = FitTable("Effective settings", shrink=("source", "value"))
    table.column("setting", style="bold")
    table.column("value", "id")
    table.column("source", "path")
    for row in report.settings:
        value = (
            "-"
            if row.value is None
            else (json.dumps(row.value) if isinstance(row.value, dict) else str(row.value))
        )
        style = "dim" if row.source == "default" else "green"
        source = row.source if row.source_detail is None else f"{row.source} ({row.source_detail})"
        table.row(row.key, Long(value), Long(source, short=row.source, style=style))
    return table


def paths_table(report: PathReport) -> FitTable:
    table = FitTable("Files and folders", shrink=("path",))
    table.column("what", style="bold")
    table.column("exists")
    table.column("path", "path")
    for row in report.paths:
        table.row(row.name, "yes" if row.exists else "no", str(row.path))
    return table


# --- count and dry run ------------------------------------------------------------------


def count_table(report: CountReport) -> Group:
    priced = report.priced_as or "unpriced"
    window = f"{report.context_window:,}" if report.context_window else "unknown"
    header = Text.assemble(
        ("Model ", "dim"),
        (report.model, "bold"),
        (f" (priced as {priced})", "dim"),
        ("  encoding ", "dim"),
        report.encoding,
        ("  endpoint ", "dim"),
        report.endpoint,
        ("  prompt ", "dim"),
        report.prompt,
        ("  context window ", "dim"),
        window,
    )
    files = list(report.files) + ([report.total] if report.total else [])
    labels = sorted({f.input_tokens_label for f in files})
    exact = labels == ["exact"]
    title = "Tokens (exact, as sent)" if exact else f"Tokens (as sent; input {', '.join(labels)})"
    tokens = FitTable(
        title,
        shrink=("mean", "skipped", "file", "requests", "max (row)", "over context"),
    )
    tokens.column("file", "path")
    for title in ("rows", "skipped", "requests", "input tokens", "mean", "max (row)"):
        tokens.column(title, "num")
    tokens.column("over context", "num", style="red")
    costs = FitTable(
        "Cost estimate (Batch API; synchronous beside)",
        caption=[
            Text(
                "input: exact; expected: typical answer size; worst: max_tokens_per_response"
                if exact
                else "input: the estimate (worst: its upper bound); expected: typical answer "
                "size; worst: max_tokens_per_response",
                style="dim",
            )
        ],
        shrink=("sync expected", "file", "input"),
    )
    costs.column("file", "path")
    for title in ("input", "expected", "worst", "sync expected"):
        costs.column(title, "num")
    for f in files:
        last = report.total is not None and f is report.files[-1]
        tokens.row(
            f.path,
            f"{f.rows:,}",
            f"{f.skipped:,}",
            f"{f.requests:,}",
            f"{f.input_tokens:,}"
            + ("" if f.input_tokens_label == "exact" else f" ({f.input_tokens_label})"),
            f"{f.mean_tokens:,.1f}",
            f"{f.max_tokens:,}" + (f" ({f.max_row:,})" if f.max_row else ""),
            f"{f.over_context:,}",
            end_section=last,
        )
        c = f.cost
        costs.row(
            f.path,
            money(c.input if c else None),
            money(c.total_expected if c else None),
            money(c.total_worst if c else None),
            money(c.sync_total_expected if c else None),
            end_section=last,
        )
    return Group(header, tokens, costs)


def dry_run_table(report: DryRun) -> Group:
    parts: list[RenderableType] = []
    for plan in report.plans:
        table = FitTable(
            f"{plan.input}: {plan.rows:,} rows, {plan.requests:,} requests, "
            f"{plan.skipped:,} skipped, {plan.tokens:,} input tokens",
            caption=[Text("Request files in:"), soft(f"  {plan.folder}")],
            shrink=("bytes", "file", "requests"),
        )
        table.column("chunk", "num")
        table.column("rows")
        for title in ("requests", "tokens", "bytes"):
            table.column(title, "num")
        table.column("file")
        for c in plan.chunks:
            table.row(
                str(c.chunk),
                f"{c.first_row:,}-{c.last_row:,}",
                f"{c.requests:,}",
                f"{c.tokens:,}",
                f"{c.bytes:,}",
                c.file,
            )
        parts.append(table)
    e = report.estimate
    if report.input_tokens_label != "exact":
        parts.append(
            Text(
                f"Input tokens are {report.input_tokens_label} (counted offline); chunk tokens "
                "are their upper bound. batchgrader count with a key counts them exactly.",
                style="dim",
            )
        )
    parts.append(
        Text.assemble(
            ("Estimated cost at Batch API rates: ", "bold"),
            f"{money(e.total_expected if e else None)} expected, ",
            f"{money(e.total_worst if e else None)} worst case ",
            (f"(synchronous: {money(e.sync_total_expected if e else None)})", "dim"),
        )
    )
    return Group(*parts)


# --- the run's summary ------------------------------------------------------------------

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


# --- jobs -------------------------------------------------------------------------------


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
            c.batch_id or "-",
            f"{c.completed:,}",
            f"{c.failed:,}",
            c.error or "",
        )
    return table


# --- split ------------------------------------------------------------------------------


def split_table(report: SplitReport) -> Group:
    limits = ", ".join(
        f"at most {value:,} {what}"
        for what, value in (("rows", report.limits.rows), ("tokens", report.limits.tokens))
        if value is not None
    )
    counted = report.model is not None  # a split by rows alone counts no tokens
    parts: list[RenderableType] = []
    for f in report.files:
        size = f"{f.rows:,} rows" + (f", {f.tokens:,} tokens" if f.tokens is not None else "")
        if f.within_limits:
            parts.append(
                Text.assemble(
                    (f.input, "bold"), f": {size}: already within the limits, not copied."
                )
            )
            continue
        table = FitTable(
            f"{f.input}: {size} in {len(f.parts)} parts",
            caption=[
                Text("Would be written to:" if report.dry_run else "Written to:"),
                soft(f"  {f.out_dir}"),
            ],
            shrink=("bytes", "rows", "part file"),
        )
        table.column("part file", "path")
        table.column("rows", "num")
        table.column("input rows")
        if counted:
            table.column("tokens", "num")
        table.column("bytes", "num")
        cap = report.limits.tokens
        for p in f.parts:
            cells: list[str | Text] = [
                name(p.file),
                f"{p.rows:,}",
                f"{p.first_row:,}-{p.last_row:,}",
            ]
            if counted:
                over = cap is not None and p.tokens is not None and p.tokens > cap
                tokens = "-" if p.tokens is None else f"{p.tokens:,}"
                cells.append(Text(tokens, style="red" if over else ""))
            cells.append("-" if p.bytes is None else f"{p.bytes:,}")
            table.row(*cells)
        parts.append(table)
    if counted:
        estimated = sorted({f.tokens_label for f in report.files if f.tokens_label} - {"exact"})
        note = f"; tokens {', '.join(estimated)}, upper bound used" if estimated else ""
        said = f"Each part: {limits} (request tokens for {report.model}{note})."
    else:
        said = f"Each part: {limits}."
    parts.append(Text(said, style="dim"))
    return Group(*parts)


# --- costs (batchgrader costs) ----------------------------------------------------------

_BAR_WIDTH = 20
#: What gives way first in a usage table; the key column (a path or job id) moves last.
_USAGE_SHRINK = ("chart", "cached", "in-flight tokens", "input", "output", "batches")


def costs_table(report: CostReport) -> RenderableType:
    """Windows (all time, today, chosen), then the breakdown; committed beside spent."""
    if report.recorded_events == 0:
        return Text("No usage recorded yet.")
    parts: list[RenderableType] = []
    title = "Usage" + (f" of {report.model}" if report.model else "") + " (UTC)"
    windows = _usage_table(title, "window")
    for w in report.windows:
        _usage_row(windows, w.name, w)
    parts.append(windows)
    if not report.groups:
        parts.append(Text(f"No usage in {report.breakdown.name}.", style="dim"))
    else:
        bars = report.by == "day"
        title = f"By {report.by}, {report.breakdown.name}"
        kind: Kind = "path" if report.by == "file" else "id" if report.by == "job" else "text"
        breakdown = _usage_table(title, report.by, key_kind=kind, chart=bars)
        top_cost = max(g.cost_usd for g in report.groups)
        top_tokens = max(g.total_tokens for g in report.groups)
        for g in report.groups:
            extra = [_day_bar(g, top_cost, top_tokens)] if bars else []
            _usage_row(breakdown, g.key, g, *extra, flight_tokens=not bars)
        parts.append(breakdown)
    every = report.windows[0]
    unpriced = every.spent.unpriced_batches + every.committed.unpriced_batches
    if unpriced:
        noun = "batch has" if unpriced == 1 else "batches have"
        parts.append(Text(f"{unpriced:,} {noun} no price (not in the dollars).", "yellow"))
    parts.append(
        Text(
            "Tokens: input (cached is part of it), output, total. spent: collected batches, "
            "priced from the provider's usage; in flight: estimates of batches not yet "
            "collected (worst-case output). Exact figures: --json or --csv.",
            style="dim",
        )
    )
    return Group(*parts)


def _usage_table(title: str, key: str, *, key_kind: Kind = "text", chart: bool = False) -> FitTable:
    table = FitTable(title, shrink=(*_USAGE_SHRINK, key))
    table.column(key, key_kind)
    for column in ("batches", "input", "cached", "output", "total", "spent"):
        table.column(column, "num")
    if not chart:
        table.column("in-flight tokens", "num", style="yellow")
    table.column("in flight", "num", style="yellow")
    if chart:
        table.column("chart")
    return table


def _usage_row(
    table: FitTable, key: str, usage: Usage, *extra: Text, flight_tokens: bool = True
) -> None:
    s, c = usage.spent, usage.committed
    in_flight = [f"{c.total_tokens:,}" if c.batches else "-"] if flight_tokens else []
    table.row(
        key,
        f"{s.batches:,}",
        f"{s.input_tokens:,}",
        f"{s.cached_input_tokens:,}",
        f"{s.output_tokens:,}",
        f"{s.total_tokens:,}",
        money(s.cost_usd) if s.batches else "-",
        *in_flight,
        money(c.cost_usd) if c.batches else "-",
        *extra,
    )


def _day_bar(group: Usage, top_cost: Decimal, top_tokens: int) -> Text:
    """Spent (cyan) then in flight (yellow), scaled to the day with the most."""
    if top_cost > 0:
        spent, committed, top = group.spent.cost_usd, group.committed.cost_usd, top_cost
    else:
        spent = Decimal(group.spent.total_tokens)
        committed = Decimal(group.committed.total_tokens)
        top = Decimal(max(top_tokens, 1))
    whole = round(_BAR_WIDTH * (spent + committed) / top)
    solid = min(whole, round(_BAR_WIDTH * spent / top))
    if whole == 0 and spent + committed > 0:
        whole, solid = 1, 1 if spent > 0 else 0
    return Text.assemble(("█" * solid, "cyan"), ("█" * (whole - solid), "yellow"))


def export_note(result: ExportResult) -> Group:
    """What ``costs --export`` wrote."""
    return Group(Text(f"Wrote {result.events:,} usage events to:"), soft(f"  {result.path}"))


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


def pilot_table(report: PilotReport) -> Group:
    """What the pilot found: parse rate, scores, output tokens, the re-estimate."""
    table = Table(title="Pilot", title_justify="left", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    verdict = "[green]passed[/]" if report.passed else "[bold red]failed[/]"
    table.add_row("rows", f"{report.rows:,} ({report.seconds:.1f} s)")
    table.add_row("parsed", f"{report.parse_rate:.0%} {verdict}")
    table.add_row("scores", ", ".join(f"{k}: {v:,}" for k, v in report.scores.items()) or "-")
    table.add_row("refused / truncated", f"{report.refused:,} / {report.truncated:,}")
    tokens = report.output_tokens
    table.add_row(
        "output tokens", f"mean {tokens.mean:,.1f}, p95 {tokens.p95:,}, max {tokens.max:,}"
    )
    est = report.estimate
    if est.expected_usd is not None:
        table.add_row(
            "the rest",
            f"{money(est.expected_usd)} expected ({money(est.low_usd)} - {money(est.high_usd)})",
        )
    parts: list[RenderableType] = [table]
    if report.failed_answers:
        parts.append(Text("Failed answers:", style="bold"))
        parts.extend(Text(f"  {line}") for line in report.failed_answers)
    return Group(*parts)


def piloted_count(report: PilotedCount) -> Group:
    return Group(count_table(report), *(pilot_table(p) for p in report.pilot))


def piloted_dry_run(report: PilotedDryRun) -> Group:
    return Group(dry_run_table(report), *(pilot_table(p) for p in report.pilot))
