"""Building a ``JudgeReport`` from a graded file (and the ledger, when it knows the job).

The file is read lazily and reduced by polars to small tables (counts by error code,
by value, by pair of judge and label), so memory follows the number of distinct
values, not the rows; the figures are computed from those tables in plain Python.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import polars as pl

from batchgrader.data.formats import Format
from batchgrader.errors import InputFileError
from batchgrader.report import bootstrap
from batchgrader.report.graded import (
    ERROR_COLUMN,
    RESPONSE_COLUMN,
    Field,
    GradedFile,
    as_value,
    first_line,
    number,
    open_graded,
    scale_values,
    text,
    value_key,
)
from batchgrader.report.job import JobFacts, find_job
from batchgrader.report.labels import compare
from batchgrader.report.model import FieldSummary, JobUsage, JudgeReport, PerRow


def build_report(
    path: Path,
    *,
    fmt: Format | None = None,
    labels: str | None = None,
    field: str | None = None,
    ledger_db: Path | None = None,
    text_column: str | None = None,
    default_text_column: str | None = None,
    seed: int = bootstrap.SEED,
) -> JudgeReport:
    """Report on the graded file ``path``.

    ``labels`` compares the judge with that column; ``field`` reports an answer-schema
    field instead of ``llm_score``; ``ledger_db`` adds the job's tokens and cost when the
    ledger knows it. The disagreeing rows show ``text_column``, else the job's graded
    column, else ``default_text_column``.
    """
    job = find_job(ledger_db, path) if ledger_db is not None else None
    graded = open_graded(path, fmt, job, labels=labels)
    chosen = graded.field(field)
    summaries, failed, answered = _tallies(graded)
    main = summaries[chosen.column]
    agreement = None
    if labels is not None:
        shown = text_column or (job.text_column if job else None) or default_text_column
        agreement = compare(graded, chosen, labels, shown, seed=seed)
    return JudgeReport(
        file=str(path.resolve()),
        format=graded.format,
        rows=graded.rows,
        field=chosen.name,
        column=chosen.column,
        kind=chosen.kind,
        scale=chosen.scale,
        scored=main.scored,
        failed=failed,
        distribution=main.distribution,
        shares=main.shares,
        mean=main.mean,
        median=main.median,
        fields=[s for column, s in summaries.items() if column != chosen.column],
        not_reported=graded.not_reported,
        usage=_usage(job, answered) if job is not None else None,
        agreement=agreement,
    )


def _tallies(graded: GradedFile) -> tuple[dict[str, FieldSummary], dict[str, int], int]:
    """Every field's summary, failed rows by error code, rows with an answer: one
    ``collect_all`` over the file."""
    columns = graded.columns
    scan = graded.scan()
    queries = [
        scan.select(
            (text(RESPONSE_COLUMN).count() if RESPONSE_COLUMN in columns else pl.lit(0)).alias(
                "answered"
            )
        )
    ]
    if ERROR_COLUMN in columns:
        code = text(ERROR_COLUMN).str.extract(r"^([^:]*)", 1).str.strip_chars()
        failed = text(ERROR_COLUMN).is_not_null()
        queries.append(
            scan.filter(failed)
            .select(pl.when(code != "").then(code).otherwise(pl.lit("error")).alias("code"))
            .group_by("code")
            .len()
            .sort("len", "code", descending=[True, False])
        )
    for f in graded.fields:
        value = number(f.column) if f.kind == "ordinal" else text(f.column)
        queries.append(scan.select(value.alias("value")).drop_nulls().group_by("value").len())
    try:
        found = pl.collect_all(queries)
    except pl.exceptions.PolarsError as exc:
        raise InputFileError(f"{graded.path}: cannot be read ({first_line(exc)}).") from None
    answered = int(found[0].item())
    by_code: dict[str, int] = {}
    if ERROR_COLUMN in columns:
        by_code = dict(found[1].iter_rows())
    counts = found[2:] if ERROR_COLUMN in columns else found[1:]
    summaries = {
        f.column: _summary(f, dict(frame.iter_rows()))
        for f, frame in zip(graded.fields, counts, strict=True)
    }
    return summaries, by_code, answered


def _summary(field: Field, counts: dict[float | str, int]) -> FieldSummary:
    observed = {(as_value(v) if isinstance(v, float) else v): n for v, n in counts.items()}
    values = scale_values(field, list(observed))
    scored = sum(observed.values())
    distribution = {value_key(v): observed.get(v, 0) for v in values}
    mean = median = None
    if field.kind == "ordinal" and scored:
        numeric = {v: n for v, n in observed.items() if not isinstance(v, str)}
        mean = float(sum(Fraction(v) * n for v, n in numeric.items()) / scored)
        median = _median(numeric, scored)
    return FieldSummary(
        field=field.name,
        column=field.column,
        kind=field.kind,
        scale=field.scale,
        scored=scored,
        distribution=distribution,
        shares={k: n / scored for k, n in distribution.items()} if scored else {},
        mean=mean,
        median=median,
    )


def _median(counts: dict[int | float, int], n: int) -> float:
    """The median of values given as counts (the mean of the two middle ones for even n)."""
    ordered = sorted(counts)

    def nth(k: int) -> float:  # the k-th smallest value, 0-based
        seen = 0
        for v in ordered:
            seen += counts[v]
            if seen > k:
                return float(v)
        raise AssertionError("k is below n")

    return (nth((n - 1) // 2) + nth(n // 2)) / 2


def _usage(job: JobFacts, answered: int) -> JobUsage:
    u = job.usage
    per_row = None
    if answered:
        per_row = PerRow(
            input_tokens=u.input_tokens / answered,
            output_tokens=u.output_tokens / answered,
            total_tokens=u.total_tokens / answered,
            cost=u.cost / Decimal(answered) if u.cost is not None else None,
        )
    return JobUsage(
        job_id=job.id,
        model=job.model,
        batches=u.batches,
        input_tokens=u.input_tokens,
        cached_input_tokens=u.cached_input_tokens,
        output_tokens=u.output_tokens,
        reasoning_tokens=u.reasoning_tokens,
        total_tokens=u.total_tokens,
        cost=u.cost,
        unpriced_batches=u.unpriced_batches,
        answered=answered,
        per_row=per_row,
    )
