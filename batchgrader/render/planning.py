"""The tables of what is known before paying: ``count``, ``grade --dry-run``, ``split``,
and the pilot (``--pilot``).

Every table is a ``FitTable`` (render/fit.py): on a terminal it fits the width (its
``shrink`` order says what gives way first; numbers, ids and paths are never cut), and
elsewhere it prints as plain aligned lines. Long paths are printed on their own line.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from batchgrader.execution.pilot import PilotedCount, PilotedDryRun, PilotReport
from batchgrader.money.pricing import Tier
from batchgrader.planning.estimate import CountReport
from batchgrader.planning.plans import DryRun
from batchgrader.planning.splitting import SplitReport
from batchgrader.render.fit import FitTable, soft
from batchgrader.render.values import money, name


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
    if report.input_tokens_label != "exact":
        parts.append(
            Text(
                f"Input tokens are {report.input_tokens_label} (counted offline); chunk tokens "
                "are their upper bound. batchgrader count with a key counts them exactly.",
                style="dim",
            )
        )
    parts.append(estimate_line(report))
    return Group(*parts)


def estimate_line(report: DryRun) -> Text:
    """The cost at the rates the run would pay, the other mode's beside it: direct calls
    at synchronous rates (Batch API beside: what batching would save), batches and flex
    at Batch API rates (synchronous beside)."""
    e = report.estimate
    if report.tier is Tier.STANDARD:
        head, other = "of direct calls at synchronous rates", "Batch API"
        figures = (e.sync_total_expected, e.sync_total_worst, e.total_expected) if e else None
    else:
        flex = report.tier is Tier.FLEX
        head = "of flex calls at Batch API rates" if flex else "at Batch API rates"
        other = "synchronous"
        figures = (e.total_expected, e.total_worst, e.sync_total_expected) if e else None
    expected, worst, beside = figures or (None, None, None)
    return Text.assemble(
        (f"Estimated cost {head}: ", "bold"),
        f"{money(expected)} expected, {money(worst)} worst case ",
        (f"({other}: {money(beside)})", "dim"),
    )


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
