"""``batchgrader report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchgrader.cli._context import AppContext
from batchgrader.cli._options import FormatOption, JsonOption


def report(
    ctx: typer.Context,
    graded_file: Annotated[
        Path,
        typer.Argument(
            metavar="GRADED_FILE",
            help="A file batchgrader graded (CSV, TSV, JSON, JSONL or Parquet).",
            show_default=False,
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            metavar="COLUMN",
            help="Compare the judge with this column of human (or reference) labels "
            "on the same scale.",
            show_default=False,
        ),
    ] = None,
    field: Annotated[
        str | None,
        typer.Option(
            "--field",
            metavar="NAME",
            help="Report this answer-schema field (llm_NAME) instead of llm_score.",
            show_default=False,
        ),
    ] = None,
    column: Annotated[
        str | None,
        typer.Option(
            "--column",
            "-c",
            metavar="COLUMN",
            help="Text shown for the disagreeing rows (default: the job's graded column, "
            "else request.response_field).",
            show_default=False,
        ),
    ] = None,
    input_format: FormatOption = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="PATH",
            help="Also write the report as one self-contained HTML page.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --html file.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Can the judge be trusted? Rows, failures, the score distribution, tokens and
    cost of a graded file; with --labels, the judge's agreement with human labels
    (kappa, weighted kappa, Spearman, confusion matrix, bootstrap intervals)."""
    from batchgrader import paths
    from batchgrader.data import atomic, formats
    from batchgrader.errors import OutputExistsError
    from batchgrader.render import report_html
    from batchgrader.render.report import judge_report
    from batchgrader.report import build_report

    app = AppContext.of(ctx)
    app.json_mode = json_output
    settings = app.load().settings
    if html is not None and html.exists() and not overwrite:
        raise OutputExistsError(
            f"{html} exists.", hint="Pass --overwrite, or choose another --html."
        )
    result = build_report(
        graded_file,
        fmt=formats.parse_format(input_format),
        labels=labels,
        field=field,
        ledger_db=paths.ledger_db(settings.state_dir()),
        text_column=column,
        default_text_column=settings.request.response_field,
    )
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(html) as tmp:
            tmp.write_text(report_html.page(result), encoding="utf-8")
    app.emit(result, judge_report)
    if html is not None:
        app.note(f"Wrote {html}")
