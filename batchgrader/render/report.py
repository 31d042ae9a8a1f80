"""The judge report for a terminal: rich tables and bar charts that fit 80 columns.

Numbers, ids and paths are never cut: numeric columns do not wrap, paths sit on a line
of their own (folded when longer than the terminal), and the confusion matrix turns
into a list of its cells when it is wider than the terminal.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from batchgrader.render.summary import summary_table
from batchgrader.render.values import money
from batchgrader.report.agreement import kappa_band
from batchgrader.report.graded import error_meaning
from batchgrader.report.model import Agreement, FieldSummary, JobUsage, JudgeReport
from batchgrader.report.run import LabelledRunReport

#: Widest bar of a bar chart, in cells.
BAR_WIDTH = 32


# --- numbers as people read them (exact figures are in --json) -------------------------


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def figure(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def interval(pair: tuple[float, float] | None, as_percent: bool = False) -> str:
    if pair is None:
        return "-"
    low, high = pair
    if as_percent:
        return f"{100 * low:.1f}–{100 * high:.1f}%"
    return f"{low:.3f}–{high:.3f}"


def leaning(mean_difference: float | None) -> str:
    """Which way the judge leans against the labels."""
    if mean_difference is None or mean_difference == 0:
        return "neither harsher nor kinder" if mean_difference == 0 else ""
    return "judge kinder" if mean_difference > 0 else "judge harsher"


# --- layout helpers ---------------------------------------------------------------------


class Bar:
    """A horizontal bar, ``share`` of the width it is given (at most ``BAR_WIDTH``)."""

    def __init__(self, share: float, style: str = "cyan") -> None:
        self.share = share
        self.style = style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, min(BAR_WIDTH, options.max_width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cells = round(self.share * options.max_width)
        if self.share > 0 and cells == 0:
            cells = 1
        yield Text("█" * cells, style=self.style, no_wrap=True, overflow="crop")


class Clipped:
    """One line of text, cut with an ellipsis to the width it is given."""

    def __init__(self, text: str, style: str = "dim") -> None:
        self.text = text
        self.style = style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(1, len(self.text)), max(1, len(self.text)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = Text(self.text, style=self.style, no_wrap=True, overflow="ellipsis")
        line.truncate(options.max_width, overflow="ellipsis")
        yield line


class FirstThatFits:
    """The first renderable whose narrowest layout fits the width; else the last one."""

    def __init__(self, *choices: RenderableType) -> None:
        self.choices = choices

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        unbounded = options.update_width(1_000_000)  # measure what it needs, not what it gets
        for choice in self.choices[:-1]:
            if Measurement.get(console, unbounded, choice).minimum <= options.max_width:
                yield choice
                return
        yield self.choices[-1]


def stack(parts: list[RenderableType]) -> Table:
    """Renderables one under the other, every text wrapped (or folded) to the width.

    The app prints with ``soft_wrap`` (long lines are left to the terminal); in a table
    cell, text wraps at the width rich is given, like the tables around it.
    """
    grid = Table.grid()
    grid.add_column(overflow="fold")
    for part in parts:
        grid.add_row(part)
    return grid


def _plain_table(title: str | None = None) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,
        padding=(0, 1),
        show_header=False,
        pad_edge=False,
    )


# --- sections ---------------------------------------------------------------------------


def _header(report: JudgeReport) -> Text:
    head = Text.assemble(
        ("Judge report: ", "bold"),
        (report.field, "bold cyan"),
        f" ({report.column}, {report.kind}",
        f", scale {report.scale[0]}-{report.scale[1]})" if report.scale else ")",
    )
    head.append("\n")
    head.append(report.file)  # its own line: folded when long, never cut
    return head


def _rows_table(report: JudgeReport) -> Table:
    table = _plain_table("Rows")
    table.add_column("what")
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("meaning", style="dim")
    table.add_row("rows", f"{report.rows:,}", "", "")
    share = report.scored / report.rows if report.rows else None
    table.add_row(f"{report.field} given", f"{report.scored:,}", percent(share), "")
    failed = sum(report.failed.values())
    table.add_row(
        "failed", f"{failed:,}", percent(failed / report.rows if report.rows else None), ""
    )
    for code, n in report.failed.items():
        table.add_row(
            Text(f"  {code}", style="red"),
            f"{n:,}",
            percent(n / report.rows if report.rows else None),
            error_meaning(code),
        )
    return table


def distribution_chart(summary: FieldSummary) -> Table:
    """Counts and shares of each value, as bars."""
    stats = f"{summary.scored:,} rows"
    if summary.mean is not None and summary.median is not None:
        stats += f"; mean {summary.mean:.2f}, median {summary.median:g}"
    table = _plain_table(f"{summary.field} ({stats})")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("bar", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    top = max(summary.distribution.values(), default=0)
    for value, n in summary.distribution.items():
        table.add_row(
            Text(value),
            Bar(n / top if top else 0.0),
            f"{n:,}",
            percent(summary.shares.get(value)),
        )
    return table


def _usage_table(usage: JobUsage) -> Table:
    title = Text.assemble(
        ("Tokens and cost", "bold"),
        f" (job {usage.job_id}, {usage.model}, {usage.answered:,} answered rows)",
    )
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("")
    table.add_column("total", justify="right", no_wrap=True)
    table.add_column("per row", justify="right", no_wrap=True)
    per = usage.per_row
    table.add_row(
        "input tokens", f"{usage.input_tokens:,}", f"{per.input_tokens:,.1f}" if per else "-"
    )
    table.add_row("cached", f"{usage.cached_input_tokens:,}", "")
    table.add_row(
        "output tokens", f"{usage.output_tokens:,}", f"{per.output_tokens:,.1f}" if per else "-"
    )
    table.add_row(
        "cost",
        money(usage.cost),
        money(per.cost) if per is not None and per.cost is not None else "-",
    )
    parts: list[RenderableType] = [title, table]
    if usage.unpriced_batches:
        parts.append(Text(f"{usage.unpriced_batches:,} batch(es) have no price.", style="yellow"))
    return stack(parts)


def _metrics_table(a: Agreement) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column(f"{100 * a.ci.level:g}% CI", justify="right", no_wrap=True)
    table.add_column("reading", style="dim")
    table.add_row("exact agreement", percent(a.exact), interval(a.ci.exact, as_percent=True), "")
    if a.kind == "ordinal":
        table.add_row("within one point", percent(a.within_one), "", "")
    table.add_row(
        "Cohen's kappa",
        figure(a.cohen_kappa),
        "",
        kappa_band(a.cohen_kappa) if a.cohen_kappa is not None else "undefined",
    )
    if a.kind == "categorical":
        return table
    rows: list[tuple[str, str, str, str]] = [
        (
            "quadratic-weighted kappa",
            figure(a.quadratic_weighted_kappa),
            interval(a.ci.quadratic_weighted_kappa),
            kappa_band(a.quadratic_weighted_kappa)
            if a.quadratic_weighted_kappa is not None
            else "",
        ),
        ("Spearman's rho", figure(a.spearman), "", ""),
        ("mean absolute error", figure(a.mae, 2), "", ""),
        ("judge minus label", signed(a.mean_difference), "", leaning(a.mean_difference)),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def confusion_view(a: Agreement) -> FirstThatFits:
    """The confusion matrix, or the list of its non-zero cells when it is too wide."""
    labels = a.confusion.labels
    matrix = Table(box=None, padding=(0, 1), pad_edge=False)
    matrix.add_column(Text("label \\ judge", style="dim"), no_wrap=True)
    for label in labels:
        matrix.add_column(Text(label), justify="right", no_wrap=True)
    for i, (label, counts) in enumerate(zip(labels, a.confusion.matrix, strict=True)):
        matrix.add_row(
            Text(label, style="bold"),
            *(
                Text(f"{n:,}" if n else ".", style="green" if i == j else ("" if n else "dim"))
                for j, n in enumerate(counts)
            ),
        )
    cells = Table(box=None, padding=(0, 1), pad_edge=False)
    for name in ("label", "judge", "rows"):
        cells.add_column(name, justify="right" if name == "rows" else "left", no_wrap=True)
    for label, counts in zip(labels, a.confusion.matrix, strict=True):
        for judge, n in zip(labels, counts, strict=True):
            if n:
                cells.add_row(label, judge, f"{n:,}", style="green" if judge == label else "")
    return FirstThatFits(matrix, cells)


def _disagreements_table(a: Agreement) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("row", justify="right", no_wrap=True)
    table.add_column("judge", justify="right", no_wrap=True)
    table.add_column("label", justify="right", no_wrap=True)
    table.add_column("text")  # the one column that gives way (numbers never do)
    for d in a.disagreements:
        table.add_row(f"{d.row:,}", str(d.judge), str(d.label), Clipped(d.text or ""))
    return table


def agreement_view(a: Agreement) -> Table:
    """The agreement figures, the confusion matrix and the most different rows."""
    missing = []
    if a.unlabelled:
        missing.append(f"{a.unlabelled:,} scored without a label")
    if a.unscored:
        missing.append(f"{a.unscored:,} labelled without a judge value")
    title = Text.assemble(
        ("Agreement with ", "bold"),
        (a.labels_column, "bold cyan"),
        f" ({a.n:,} rows with both" + ("; " + ", ".join(missing) if missing else "") + ")",
    )
    parts: list[RenderableType] = [title, _metrics_table(a)]
    for metric, why in a.undefined.items():
        if a.kind == "ordinal" or metric == "cohen_kappa":
            parts.append(Text(f"{metric} undefined: {why}.", style="yellow"))
    parts += [
        Text(""),
        Text("Confusion matrix (rows: label, columns: judge)", style="bold"),
        confusion_view(a),
    ]
    if a.disagreements:
        heading = "Rows where judge and label differ most"
        if a.kind == "categorical":
            heading = "Rows where judge and label differ"
        parts += [Text(""), Text(heading, style="bold"), _disagreements_table(a)]
    return stack(parts)


def judge_report(report: JudgeReport) -> Table:
    """The whole report: rows, distributions, usage, agreement."""
    parts: list[RenderableType] = [_header(report), Text(""), _rows_table(report), Text("")]
    main = FieldSummary.model_validate(report.model_dump(include=set(FieldSummary.model_fields)))
    for summary in [main, *report.fields]:
        parts += [distribution_chart(summary), Text("")]
    if report.not_reported:
        skipped = "; ".join(f"{c} {why}" for c, why in report.not_reported.items())
        parts += [Text(f"Not reported: {skipped}.", style="dim"), Text("")]
    if report.usage is not None:
        parts += [_usage_table(report.usage), Text("")]
    if report.agreement is not None:
        parts.append(agreement_view(report.agreement))
    else:
        parts.append(Text("Compare with human labels: --labels COLUMN.", style="dim"))
    return stack(parts)


# --- grade --labels ------------------------------------------------------------------


def agreement_lines(a: Agreement, where: str = "") -> Text:
    """Two lines of agreement for a run summary (``where``: the file's name)."""
    text = Text.assemble(
        ("Agreement with ", "bold"),
        (a.labels_column, "bold cyan"),
        f" in {where}" if where else "",
        f" ({a.n:,} rows): exact {percent(a.exact)}",
    )
    if a.kind == "ordinal":
        text.append(f", within one {percent(a.within_one)}")
    text.append(f", Cohen's kappa {figure(a.cohen_kappa)}")
    if a.kind == "ordinal":
        text.append(
            f"\n  weighted kappa {figure(a.quadratic_weighted_kappa)}"
            f", Spearman {figure(a.spearman)}, MAE {figure(a.mae, 2)}"
            f", judge - label {signed(a.mean_difference)}"
        )
    return text


def labelled_summary(report: LabelledRunReport) -> Group:
    """The run summary of ``grade --labels``, then each file's agreement lines."""
    parts: list[RenderableType] = [summary_table(report)]  # as grade prints it
    for found in report.agreement:
        if found.agreement is not None:
            parts.append(agreement_lines(found.agreement, found.input.rsplit("/", 1)[-1]))
        else:
            parts.append(Text(f"No agreement for {found.output}: {found.problem}", "yellow"))
    parts.append(Text("Full report: batchgrader report GRADED_FILE --labels COLUMN", "dim"))
    return Group(parts[0], stack(parts[1:]))
