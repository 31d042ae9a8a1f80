"""The tables of ``costs``: usage by window, then by model, day, file or job (spent
beside in flight), and what ``costs --export`` wrote.
"""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group, RenderableType
from rich.text import Text

from batchgrader.money.costs import CostReport, Usage
from batchgrader.money.export import ExportResult
from batchgrader.render.fit import FitTable, Kind, soft
from batchgrader.render.values import money

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
