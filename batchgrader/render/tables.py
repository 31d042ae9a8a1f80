"""Pure renderers: a result model in, a rich renderable out."""

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
from batchgrader.execution.run import RunReport
from batchgrader.money.costs import CostReport, Usage
from batchgrader.money.export import ExportResult
from batchgrader.planning.estimate import CountReport
from batchgrader.planning.plans import DryRun
from batchgrader.planning.splitting import SplitReport


def settings_table(report: ConfigReport) -> Table:
    table = Table(title="Effective settings", title_justify="left")
    table.add_column("setting", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for row in report.settings:
        value = (
            "-"
            if row.value is None
            else (json.dumps(row.value) if isinstance(row.value, dict) else str(row.value))
        )
        source = row.source if row.source_detail is None else f"{row.source} ({row.source_detail})"
        style = "dim" if row.source == "default" else "green"
        table.add_row(row.key, Text(value), Text(source, style=style))
    return table


def paths_table(report: PathReport) -> Table:
    table = Table(title="Files and folders", title_justify="left")
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("exists")
    for row in report.paths:
        table.add_row(Text(row.name), Text(str(row.path)), "yes" if row.exists else "no")
    return table


def money(value: Decimal | None) -> str:
    """Dollars for people, rounded by size (exact values are in --json)."""
    if value is None:
        return "unknown"
    if value < Decimal("0.01"):
        return f"${value:.6f}"
    if value < 1:
        return f"${value:.4f}"
    return f"${value:,.2f}"


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
    tokens = Table(title="Tokens (exact, as sent)", title_justify="left")
    tokens.add_column("file", overflow="fold", min_width=12)
    for name in (
        "rows",
        "skipped",
        "requests",
        "input tokens",
        "mean",
        "max (row)",
        "over context",
    ):
        tokens.add_column(name, justify="right")
    costs = Table(
        title="Cost estimate (Batch API; synchronous beside)",
        title_justify="left",
        caption="input: exact; expected: typical answer size; worst: max_tokens_per_response",
        caption_justify="left",
    )
    costs.add_column("file", overflow="fold", min_width=12)
    for name in ("input", "expected", "worst", "sync expected"):
        costs.add_column(name, justify="right")
    for f in files:
        last = report.total is not None and f is report.files[-1]
        tokens.add_row(
            Text(f.path),
            f"{f.rows:,}",
            f"{f.skipped:,}",
            f"{f.requests:,}",
            f"{f.input_tokens:,}",
            f"{f.mean_tokens:,.1f}",
            f"{f.max_tokens:,}" + (f" ({f.max_row})" if f.max_row else ""),
            Text(f"{f.over_context:,}", style="red" if f.over_context else ""),
            end_section=last,
        )
        c = f.cost
        costs.add_row(
            Text(f.path),
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
        table = Table(
            title=f"{plan.input}: {plan.rows:,} rows, {plan.requests:,} requests, "
            f"{plan.skipped:,} skipped, {plan.tokens:,} input tokens",
            title_justify="left",
            caption=f"Request files in {plan.folder}",
            caption_justify="left",
        )
        for name in ("chunk", "rows", "requests", "tokens", "bytes", "file"):
            table.add_column(name, justify="left" if name in ("rows", "file") else "right")
        for c in plan.chunks:
            table.add_row(
                str(c.index + 1),
                f"{c.first_row + 1:,}-{c.last_row + 1:,}",
                f"{c.requests:,}",
                f"{c.tokens:,}",
                f"{c.bytes:,}",
                c.file,
            )
        parts.append(table)
    e = report.estimate
    parts.append(
        Text.assemble(
            ("Estimated cost at Batch API rates: ", "bold"),
            f"{money(e.total_expected if e else None)} expected, ",
            f"{money(e.total_worst if e else None)} worst case ",
            (f"(synchronous: {money(e.sync_total_expected if e else None)})", "dim"),
        )
    )
    return Group(*parts)


def summary_table(summaries: RunReport) -> Group:
    parts: list[RenderableType] = []
    table = Table(title="Run summary", title_justify="left")
    for name in (
        "file",
        "status",
        "chunks",
        "graded",
        "failed",
        "skipped",
        "invalid",
        "input tok",
        "cached",
        "output tok",
        "cost",
        "output",
    ):
        table.add_column(name, overflow="fold")
    for s in summaries.files:
        style = "green" if s.status == "done" else ("yellow" if s.status == "submitted" else "red")
        table.add_row(
            Text(s.input.rsplit("/", 1)[-1]),
            Text(s.status, style=style),
            f"{s.chunks - s.chunks_failed}/{s.chunks}",
            f"{s.graded:,}",
            f"{s.failed:,}",
            f"{s.skipped:,}",
            f"{s.invalid_answers:,}",
            f"{s.input_tokens:,}",
            f"{s.cached_tokens:,}",
            f"{s.output_tokens:,}",
            money(Decimal(s.cost)) if s.cost is not None else "-",
            Text(s.output or f"job {s.job_id}"),
        )
    parts.append(table)
    for s in summaries.files:
        if s.score_counts:
            top = max(s.score_counts.values())
            dist = Table(
                title=f"Scores: {s.input.rsplit('/', 1)[-1]}",
                title_justify="left",
                show_header=False,
                box=None,
            )
            for score, n in s.score_counts.items():
                bar = "█" * max(1, round(30 * n / top))
                dist.add_row(score, Text(bar, style="cyan"), f"{n:,}")
            if s.invalid_answers:
                dist.add_row("invalid", "", f"{s.invalid_answers:,}")
            parts.append(dist)
        for error in s.errors[:5]:
            parts.append(Text(f"  {error}", style="red"))
        if s.reused:
            paid = f" (they cost {money(Decimal(s.reused_cost))} then)" if s.reused_cost else ""
            parts.append(
                Text(f"  {s.reused:,} row(s) reused answers paid for before{paid}.", style="dim")
            )
    if summaries.today_cost is not None:
        parts.append(
            Text(f"Spent today (all runs): {money(Decimal(summaries.today_cost))}", style="dim")
        )
    return Group(*parts)


def jobs_table(report: JobList) -> RenderableType:
    if not report.jobs:
        return Text("No jobs. (--all includes finished ones.)")
    table = Table(title="Jobs", title_justify="left")
    for name in ("id", "file", "model", "status", "chunks", "rows", "cost", "age"):
        table.add_column(name, overflow="fold")
    for j in report.jobs:
        table.add_row(
            j.id,
            Text(j.file.rsplit("/", 1)[-1]),
            j.model,
            j.status,
            f"{j.chunks_done}/{j.chunks}",
            f"{j.rows:,}",
            money(Decimal(j.cost)) if j.cost else "-",
            j.age,
        )
    return table


def job_detail_table(report: JobDetail) -> RenderableType:
    j = report.job
    table = Table(title=f"Job {j.id}: {j.file} ({j.model}, {j.status})", title_justify="left")
    for name in (
        "chunk",
        "rows",
        "requests",
        "tokens",
        "status",
        "batch",
        "done",
        "failed",
        "error",
    ):
        table.add_column(name, overflow="fold")
    for c in report.chunks:
        table.add_row(
            str(c.chunk),
            c.rows,
            f"{c.requests:,}",
            f"{c.tokens:,}",
            c.status,
            c.batch_id or "-",
            f"{c.completed:,}",
            f"{c.failed:,}",
            Text(c.error or "", style="red"),
        )
    return table


def split_table(report: SplitReport) -> Group:
    limits = ", ".join(
        f"at most {value:,} {name}"
        for name, value in (("rows", report.limits.rows), ("tokens", report.limits.tokens))
        if value is not None
    )
    parts: list[RenderableType] = []
    for f in report.files:
        if f.within_limits:
            parts.append(
                Text.assemble(
                    (f.input, "bold"),
                    f": {f.rows:,} rows, {f.tokens:,} tokens: already within the limits, "
                    "not copied.",
                )
            )
            continue
        table = Table(
            title=f"{f.input}: {f.rows:,} rows, {f.tokens:,} tokens in {len(f.parts)} parts",
            title_justify="left",
            caption=f"{'Would be written to' if report.dry_run else 'Written to'} {f.out_dir}",
            caption_justify="left",
        )
        for name in ("part file", "rows", "input rows", "tokens", "bytes"):
            left = name in ("part file", "input rows")
            table.add_column(name, justify="left" if left else "right")
        cap = report.limits.tokens
        for p in f.parts:
            table.add_row(
                Text(PurePath(p.file).name),
                f"{p.rows:,}",
                f"{p.first_row + 1:,}-{p.last_row + 1:,}",
                Text(f"{p.tokens:,}", style="red" if cap is not None and p.tokens > cap else ""),
                "-" if p.bytes is None else f"{p.bytes:,}",
            )
        parts.append(table)
    parts.append(Text(f"Each part: {limits} (request tokens for {report.model}).", style="dim"))
    return Group(*parts)


# --- costs (batchgrader costs) ---------------------------------------------------------

_BAR_WIDTH = 20


def costs_table(report: CostReport) -> RenderableType:
    """Windows (all time, today, chosen), then the breakdown; committed beside spent."""
    if report.recorded_events == 0:
        return Text("No usage recorded yet.")
    parts: list[RenderableType] = []
    title = "Usage" + (f" of {report.model}" if report.model else "") + " (UTC)"
    windows = _usage_table(title, "window")
    for w in report.windows:
        _usage_row(windows, Text(w.name), w)
    parts.append(windows)
    if not report.groups:
        parts.append(Text(f"No usage in {report.breakdown.name}.", style="dim"))
    else:
        bars = report.by == "day"
        title = f"By {report.by}, {report.breakdown.name}"
        breakdown = _usage_table(title, report.by, flight_tokens=not bars)
        if bars:
            breakdown.add_column("", no_wrap=True)
        top_cost = max(g.cost_usd for g in report.groups)
        top_tokens = max(g.total_tokens for g in report.groups)
        for g in report.groups:
            extra = [_day_bar(g, top_cost, top_tokens)] if bars else []
            _usage_row(breakdown, Text(g.key), g, *extra, flight_tokens=not bars)
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


def _usage_table(title: str, key: str, *, flight_tokens: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key, overflow="fold", no_wrap=key in ("day", "model"))
    for name in ("batches", "input", "cached", "output", "total", "spent"):
        table.add_column(name, justify="right", no_wrap=True)
    if flight_tokens:
        table.add_column("in-flight tok", justify="right", style="yellow", no_wrap=True)
    table.add_column("in flight", justify="right", style="yellow", no_wrap=True)
    return table


def _usage_row(
    table: Table, key: Text, usage: Usage, *extra: RenderableType, flight_tokens: bool = True
) -> None:
    s, c = usage.spent, usage.committed
    in_flight = [f"{c.total_tokens:,}" if c.batches else "-"] if flight_tokens else []
    table.add_row(
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


def export_note(result: ExportResult) -> Text:
    """One line saying what ``costs --export`` wrote."""
    return Text(f"Wrote {result.events:,} usage events to {result.path}.")


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
