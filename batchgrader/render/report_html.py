"""The judge report as one self-contained HTML page (``report --html``).

Inline CSS and HTML only: no script, no font, no image, nothing fetched, so the page
opens offline and from an attachment. Bars and the heat map are plain elements sized
in percent, so they follow the width of a phone; colours come from CSS variables with
a dark set under ``prefers-color-scheme: dark``. Every value from the file is escaped.
"""

from __future__ import annotations

from html import escape

from batchgrader import __version__
from batchgrader.render.report import figure, interval, leaning, percent, signed
from batchgrader.render.values import money
from batchgrader.report.agreement import kappa_band
from batchgrader.report.graded import error_meaning
from batchgrader.report.model import Agreement, FieldSummary, JobUsage, JudgeReport

_STYLE = """
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --card: #f6f8fa;
  --bar: #0969da; --heat: 9, 105, 218; --agree: #1a7f37; --warn: #9a6700;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --card: #151b23;
    --bar: #4493f8; --heat: 68, 147, 248; --agree: #3fb950; --warn: #d29922;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 62rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .25rem 0; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
.muted { color: var(--muted); }
.path { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem;
  overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(10.5rem, 1fr));
  gap: .5rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: .5rem .75rem; }
.card .v { font-size: 1.35rem; font-variant-numeric: tabular-nums; }
.card .k, .card .n { font-size: .8rem; color: var(--muted); }
.bars { display: grid; grid-template-columns: auto 1fr auto auto; gap: .2rem .6rem;
  align-items: center; max-width: 40rem; }
.bars .label { text-align: right; font-variant-numeric: tabular-nums; }
.bars .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.track { height: 1.1rem; min-width: 3rem; background: var(--card); border-radius: 3px; }
.fill { height: 100%; background: var(--bar); border-radius: 3px; min-width: 2px; }
.fill.zero { min-width: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid var(--line); text-align: right;
  vertical-align: top; }
th { font-weight: 600; }
td.text, th.text { text-align: left; overflow-wrap: anywhere; }
th.name, td.name { text-align: left; white-space: nowrap; }
.dis { display: grid; gap: .5rem; }
.dis .item { border-bottom: 1px solid var(--line); padding: .25rem 0 .5rem; }
.dis .meta { font-variant-numeric: tabular-nums; font-weight: 600; }
.dis .quote { color: var(--muted); overflow-wrap: anywhere; }
.heat td { min-width: 2.6rem; text-align: center; border: 1px solid var(--bg); }
.heat td.hot { color: #ffffff; }
.heat td.diag { outline: 2px solid var(--agree); outline-offset: -2px; }
.heat th[scope=row] { text-align: right; }
.note { color: var(--warn); }
footer { margin-top: 2rem; font-size: .8rem; color: var(--muted); }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _have(n: int) -> str:
    return "row has" if n == 1 else "rows have"


def _card(key: str, value: str, note: str = "") -> str:
    extra = f'<div class="n">{_e(note)}</div>' if note else ""
    return (
        f'<div class="card"><div class="k">{_e(key)}</div>'
        f'<div class="v">{_e(value)}</div>{extra}</div>'
    )


def _bars(summary: FieldSummary) -> str:
    top = max(summary.distribution.values(), default=0)
    cells = []
    for value, n in summary.distribution.items():
        width = 100 * n / top if top else 0
        share = summary.shares.get(value)
        cells.append(
            f'<div class="label">{_e(value)}</div>'
            f'<div class="track"><div class="fill{" zero" if n == 0 else ""}" '
            f'style="width: {width:.2f}%"></div></div>'
            f'<div class="num">{n:,}</div><div class="num muted">{_e(percent(share))}</div>'
        )
    stats = f"{summary.scored:,} rows"
    if summary.mean is not None and summary.median is not None:
        stats += f" · mean {summary.mean:.2f} · median {summary.median:g}"
    label = f"Distribution of {summary.field}"
    return (
        f"<h2>{_e(summary.field)} <span class='muted'>({_e(summary.column)})</span></h2>"
        f'<p class="muted">{_e(stats)}</p>'
        f'<div class="bars" data-chart="distribution" role="img" aria-label="{_e(label)}">'
        + "".join(cells)
        + "</div>"
    )


def _rows(report: JudgeReport) -> str:
    def share(n: int) -> str:
        return percent(n / report.rows if report.rows else None)

    failed = sum(report.failed.values())
    lines = [
        f"<tr><th class='name'>rows</th><td>{report.rows:,}</td><td></td><td></td></tr>",
        f"<tr><th class='name'>{_e(report.field)} given</th><td>{report.scored:,}</td>"
        f"<td>{share(report.scored)}</td><td></td></tr>",
        f"<tr><th class='name'>failed</th><td>{failed:,}</td><td>{share(failed)}</td>"
        "<td></td></tr>",
    ]
    for code, n in report.failed.items():
        lines.append(
            f"<tr><td class='name'>&emsp;{_e(code)}</td><td>{n:,}</td><td>{share(n)}</td>"
            f"<td class='text muted'>{_e(error_meaning(code))}</td></tr>"
        )
    return "<h2>Rows</h2><div class='scroll'><table>" + "".join(lines) + "</table></div>"


def _usage(usage: JobUsage) -> str:
    per = usage.per_row
    rows = [
        ("input tokens", f"{usage.input_tokens:,}", f"{per.input_tokens:,.1f}" if per else "-"),
        ("cached input tokens", f"{usage.cached_input_tokens:,}", ""),
        ("output tokens", f"{usage.output_tokens:,}", f"{per.output_tokens:,.1f}" if per else "-"),
        ("cost", money(usage.cost), money(per.cost) if per and per.cost is not None else "-"),
    ]
    body = "".join(
        f"<tr><th class='name'>{_e(a)}</th><td>{_e(b)}</td><td>{_e(c)}</td></tr>"
        for a, b, c in rows
    )
    return (
        "<h2>Tokens and cost</h2>"
        f"<p class='muted'>Job <span class='path'>{_e(usage.job_id)}</span>, "
        f"{_e(usage.model)}, {usage.answered:,} answered rows.</p>"
        "<div class='scroll'><table><tr><th></th><th>total</th><th>per row</th></tr>"
        + body
        + "</table></div>"
    )


def _figures(a: Agreement) -> str:
    cards = [_card("exact agreement", percent(a.exact), "95% CI " + interval(a.ci.exact, True))]
    if a.kind == "ordinal":
        cards.append(_card("within one point", percent(a.within_one)))
    band = kappa_band(a.cohen_kappa) if a.cohen_kappa is not None else "undefined"
    cards.append(_card("Cohen's kappa", figure(a.cohen_kappa), band))
    if a.kind == "ordinal":
        weighted = a.quadratic_weighted_kappa
        note = "95% CI " + interval(a.ci.quadratic_weighted_kappa)
        if weighted is not None:
            note = f"{kappa_band(weighted)} · {note}"
        cards += [
            _card("quadratic-weighted kappa", figure(weighted), note),
            _card("Spearman's rho", figure(a.spearman)),
            _card("mean absolute error", figure(a.mae, 2)),
            _card("judge minus label", signed(a.mean_difference), leaning(a.mean_difference)),
        ]
    notes = "".join(
        f"<p class='note'>{_e(metric)} is undefined: {_e(why)}.</p>"
        for metric, why in a.undefined.items()
        if a.kind == "ordinal" or metric == "cohen_kappa"
    )
    missing = []
    if a.unlabelled:
        missing.append(f"{a.unlabelled:,} scored " + _have(a.unlabelled) + " no label")
    if a.unscored:
        missing.append(f"{a.unscored:,} labelled " + _have(a.unscored) + " no judge value")
    extra = f" ({'; '.join(missing)})" if missing else ""
    return (
        f"<h2>Agreement with {_e(a.labels_column)}</h2>"
        f"<p class='muted'>{a.n:,} rows have both a judge value and a label{_e(extra)}. "
        "Kappa bands: Landis &amp; Koch (1977).</p>"
        f"<div class='cards' data-chart='figures'>{''.join(cards)}</div>{notes}"
    )


def _heatmap(a: Agreement) -> str:
    labels = a.confusion.labels
    header = "".join(f"<th scope='col'>{_e(v)}</th>" for v in labels)
    body = []
    for i, (label, counts) in enumerate(zip(labels, a.confusion.matrix, strict=True)):
        total = sum(counts)
        cells = []
        for j, n in enumerate(counts):
            share = n / total if total else 0.0
            classes = [c for c, on in (("hot", share > 0.5), ("diag", i == j)) if on]
            title = f"label {label}, judge {labels[j]}: {n:,} rows ({percent(share)} of label)"
            cells.append(
                f"<td class='{' '.join(classes)}' title='{_e(title)}' "
                f"style='background: rgba(var(--heat), {0.08 + 0.92 * share:.3f})'>"
                f"{n:,}</td>"
                if n
                else f"<td class='{' '.join(classes)}' title='{_e(title)}'></td>"
            )
        body.append(f"<tr><th scope='row'>{_e(label)}</th>{''.join(cells)}</tr>")
    return (
        "<h2>Confusion matrix</h2>"
        "<p class='muted'>Rows: the label; columns: the judge. Shade: share of the row "
        "(of each label value, how often the judge gave each value).</p>"
        "<div class='scroll'><table class='heat' data-chart='confusion' role='img' "
        "aria-label='Confusion matrix'>"
        f"<tr><th>label \\ judge</th>{header}</tr>" + "".join(body) + "</table></div>"
    )


def _disagreements(a: Agreement) -> str:
    if not a.disagreements:
        return "<h2>Disagreements</h2><p class='muted'>None: the judge agrees on every row.</p>"
    items = []
    for d in a.disagreements:
        gap = f" ({d.difference:+})" if d.difference is not None else ""
        items.append(
            f"<div class='item'><div class='meta'>row {d.row:,} · judge {_e(d.judge)} · "
            f"label {_e(d.label)}{_e(gap)}</div>"
            f"<div class='quote'>{_e(d.text or '')}</div></div>"
        )
    heading = "Rows where judge and label differ"
    if a.kind == "ordinal":
        heading += " most"
    return f"<h2>{heading}</h2><div class='dis'>{''.join(items)}</div>"


def page(report: JudgeReport) -> str:
    """The whole report as an HTML document."""
    main = FieldSummary.model_validate(report.model_dump(include=set(FieldSummary.model_fields)))
    scale = f", scale {report.scale[0]}–{report.scale[1]}" if report.scale else ""
    parts = [
        f"<h1>Judge report: {_e(report.field)}</h1>",
        f"<p class='path'>{_e(report.file)}</p>",
        f"<p class='muted'>{_e(report.column)}, {_e(report.kind)}{_e(scale)}</p>",
    ]
    if report.agreement is not None:
        parts.append(_figures(report.agreement))
    parts += [_bars(main), _rows(report)]
    if report.agreement is not None:
        parts += [_heatmap(report.agreement), _disagreements(report.agreement)]
    parts += [_bars(summary) for summary in report.fields]
    if report.usage is not None:
        parts.append(_usage(report.usage))
    if report.not_reported:
        skipped = "; ".join(f"{c} {why}" for c, why in report.not_reported.items())
        parts.append(f"<p class='muted'>Not reported: {_e(skipped)}.</p>")
    return (
        "<!doctype html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        "<meta name='color-scheme' content='light dark'>\n"
        f"<title>Judge report: {_e(report.field)} · {_e(report.file.rsplit('/', 1)[-1])}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(parts)
        + f"\n<footer>batchgrader {_e(__version__)}</footer>\n</main>\n</body>\n</html>\n"
    )
