"""The judge against a label column: checking the labels, the pair table, the figures.

A label column holds human (or reference) values on the judge's scale. Missing labels
(null or empty) are left out; a present label that is not on the scale is bad input:
not a number for a numeric field, a fraction where the judge gives whole numbers, a
value outside the scale the job asked for, or a category the answer schema does not
allow. Labels the judge never gave are fine: they show in the confusion matrix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import polars as pl

from batchgrader.errors import InputFileError
from batchgrader.report import agreement as metrics
from batchgrader.report import bootstrap
from batchgrader.report.graded import (
    ROW,
    Field,
    GradedFile,
    as_value,
    first_line,
    not_a_number,
    number,
    scale_values,
    text,
    value_key,
)
from batchgrader.report.model import Agreement, Confusion, Disagreement, Intervals, Value

#: Rows listed where judge and label differ most.
DISAGREEMENTS = 10
#: Characters of a disagreeing row's text kept (whitespace runs become one space).
TEXT_CHARS = 200

_JUDGE, _LABEL = "_judge", "_label"


def require_labels_column(graded: GradedFile, column: str) -> None:
    """Fail with one line when ``column`` is not in the file."""
    if column not in graded.columns:
        raise InputFileError(
            f"{graded.path}: no labels column '{column}'.",
            hint="Columns in the file: " + ", ".join(graded.columns) + ".",
        )


def _values(field: Field, column: str) -> pl.Expr:
    return number(column) if field.kind == "ordinal" else text(column)


def _problems(field: Field, column: str) -> list[tuple[pl.Expr, str]]:
    """(where a label is off the scale, why) for ``field``."""
    if field.kind == "categorical":
        if not field.categories:
            return []
        allowed = ", ".join(field.categories)
        return [(~text(column).is_in(field.categories), f"not one of: {allowed}")]
    label = number(column)
    found = [(not_a_number(column), "not a number")]
    if field.low is not None and field.high is not None:
        outside = (label < field.low) | (label > field.high)
        found.append((outside, f"outside the judge's scale {field.low}-{field.high}"))
    fraction = label != label.floor()
    if field.whole:
        found.append((fraction, _WHOLE))
    elif field.whole is None:  # unknown: whole numbers unless the judge gave a fraction
        judge = number(field.column)
        found.append((fraction & ~(judge != judge.floor()).any(), _WHOLE))
    return found


_WHOLE = "a fraction; the judge's scale has whole numbers only"


def problem_exprs(field: Field, column: str) -> list[pl.Expr]:
    """Aggregations giving the first row (and value) off the scale, for each problem."""
    exprs: list[pl.Expr] = []
    for i, (bad, _) in enumerate(_problems(field, column)):
        flagged = text(column).is_not_null() & bad.fill_null(False)
        exprs += [
            pl.col(ROW).filter(flagged).first().alias(f"row{i}"),
            text(column).filter(flagged).first().alias(f"value{i}"),
        ]
    return exprs


def raise_problem(found: dict[str, Any], path: Path, field: Field, column: str) -> None:
    """Fail with one line naming the first row whose label is off the scale."""
    for i, (_, why) in enumerate(_problems(field, column)):
        if found.get(f"row{i}") is not None:
            raise InputFileError(
                f"{path}: labels column '{column}' is not on the judge's scale: "
                f"row {found[f'row{i}']} holds {found[f'value{i}']!r}, {why}."
            )


def _check_query(graded: GradedFile, field: Field, column: str) -> pl.LazyFrame:
    judge, label = _values(field, field.column), _values(field, column)
    counts = [
        (judge.is_not_null() & label.is_null()).sum().alias("unlabelled"),
        (judge.is_null() & label.is_not_null()).sum().alias("unscored"),
    ]
    return graded.scan().select(*problem_exprs(field, column), *counts)


def _table_query(graded: GradedFile, field: Field, column: str) -> pl.LazyFrame:
    return (
        graded.scan()
        .select(_values(field, column).alias(_LABEL), _values(field, field.column).alias(_JUDGE))
        .drop_nulls()
        .group_by(_LABEL, _JUDGE)
        .len()
    )


def _worst_query(graded: GradedFile, field: Field, column: str) -> pl.LazyFrame:
    """The rows where judge and label differ most (first rows first among equals)."""
    pairs = graded.scan().select(
        ROW, _values(field, field.column).alias(_JUDGE), _values(field, column).alias(_LABEL)
    )
    pairs = pairs.drop_nulls().filter(pl.col(_JUDGE) != pl.col(_LABEL))
    if field.kind == "categorical":
        return pairs.head(DISAGREEMENTS)
    return (
        pairs.with_columns((pl.col(_JUDGE) - pl.col(_LABEL)).abs().alias("_gap"))
        .sort(["_gap", ROW], descending=[True, False])
        .head(DISAGREEMENTS)
        .drop("_gap")
    )


def compare(
    graded: GradedFile,
    field: Field,
    column: str,
    text_column: str | None,
    *,
    seed: int = bootstrap.SEED,
) -> Agreement:
    """Agreement of ``field`` with the label ``column`` (which must be on its scale)."""
    require_labels_column(graded, column)
    try:
        check, table_frame, worst = pl.collect_all(
            [
                _check_query(graded, field, column),
                _table_query(graded, field, column),
                _worst_query(graded, field, column),
            ]
        )
    except pl.exceptions.PolarsError as exc:
        raise InputFileError(
            f"{graded.path}: labels column '{column}' cannot be read ({first_line(exc)})."
        ) from None
    found = check.row(0, named=True)
    raise_problem(found, graded.path, field, column)
    if table_frame.height == 0:
        raise InputFileError(
            f"{graded.path}: no row has both a judge value ({field.column}) and a label ({column})."
        )
    return _agreement(graded, field, column, text_column, table_frame, worst, found, seed=seed)


@dataclasses.dataclass
class _Figures:
    """The metrics of one kind of field (None where they do not apply)."""

    n: int
    exact: float
    cohen_kappa: float | None
    within_one: float | None = None
    quadratic_weighted_kappa: float | None = None
    spearman: float | None = None
    mae: float | None = None
    mean_difference: float | None = None
    ci: dict[str, tuple[float, float] | None] = dataclasses.field(default_factory=dict)
    undefined: dict[str, str] = dataclasses.field(default_factory=dict)


_SAME_VALUE = (
    "judge and label give one and the same value on every row: agreement expected by "
    "chance is 100%, so agreement beyond chance is undefined"
)
_NO_ORDER = "a categorical field has no order or distance between its values"


def _ordinal_figures(pairs: dict[tuple[float, float], int], seed: int) -> _Figures:
    table = {(metrics.exact(y), metrics.exact(x)): c for (y, x), c in pairs.items()}
    found = _Figures(
        n=metrics.rows(table),
        exact=metrics.exact_agreement(table),
        cohen_kappa=metrics.cohen_kappa(table),
        within_one=metrics.within_one(table),
        quadratic_weighted_kappa=metrics.quadratic_weighted_kappa(table),
        spearman=metrics.spearman(table),
        mae=metrics.mean_absolute_error(table),
        mean_difference=metrics.mean_difference(table),
    )
    found.ci = bootstrap.intervals(
        table,
        {
            "exact": metrics.exact_agreement,
            "quadratic_weighted_kappa": metrics.quadratic_weighted_kappa,
        },
        seed=seed,
    )
    if found.cohen_kappa is None:
        found.undefined["cohen_kappa"] = _SAME_VALUE
    if found.quadratic_weighted_kappa is None:
        found.undefined["quadratic_weighted_kappa"] = _SAME_VALUE
    if found.spearman is None:
        side = "the judge" if len({x for _, x in pairs}) == 1 else "the label"
        found.undefined["spearman"] = f"{side} gives one value on every row: nothing to rank"
    return found


def _categorical_figures(pairs: dict[tuple[str, str], int], seed: int) -> _Figures:
    found = _Figures(
        n=metrics.rows(pairs),
        exact=metrics.exact_agreement(pairs),
        cohen_kappa=metrics.cohen_kappa(pairs),
    )
    found.ci = bootstrap.intervals(pairs, {"exact": metrics.exact_agreement}, seed=seed)
    found.ci["quadratic_weighted_kappa"] = None
    if found.cohen_kappa is None:
        found.undefined["cohen_kappa"] = _SAME_VALUE
    for name in ("within_one", "quadratic_weighted_kappa", "spearman", "mae", "mean_difference"):
        found.undefined[name] = _NO_ORDER
    return found


def _agreement(
    graded: GradedFile,
    field: Field,
    column: str,
    text_column: str | None,
    table_frame: pl.DataFrame,
    worst: pl.DataFrame,
    counts: dict[str, Any],
    *,
    seed: int,
) -> Agreement:
    observed: list[Value]
    keyed: dict[tuple[Value, Value], int]
    if field.kind == "ordinal":
        numbers = {(y, x): c for y, x, c in table_frame.iter_rows()}
        figures = _ordinal_figures(numbers, seed)
        keyed = {(as_value(y), as_value(x)): c for (y, x), c in numbers.items()}
    else:
        labels = {(y, x): c for y, x, c in table_frame.iter_rows()}
        figures = _categorical_figures(labels, seed)
        keyed = dict(labels)
    observed = [v for pair in keyed for v in pair]
    values = scale_values(field, observed)
    return Agreement(
        labels_column=column,
        kind=field.kind,
        n=figures.n,
        unlabelled=counts["unlabelled"],
        unscored=counts["unscored"],
        exact=figures.exact,
        within_one=figures.within_one,
        cohen_kappa=figures.cohen_kappa,
        quadratic_weighted_kappa=figures.quadratic_weighted_kappa,
        spearman=figures.spearman,
        mae=figures.mae,
        mean_difference=figures.mean_difference,
        confusion=Confusion(
            labels=[value_key(v) for v in values],
            matrix=metrics.confusion(keyed, values),
        ),
        ci=Intervals(
            exact=figures.ci["exact"],
            quadratic_weighted_kappa=figures.ci["quadratic_weighted_kappa"],
            level=bootstrap.LEVEL,
            resamples=bootstrap.RESAMPLES,
            seed=seed,
        ),
        undefined=figures.undefined,
        disagreements=_disagreements(graded, field, worst, text_column),
    )


def _disagreements(
    graded: GradedFile, field: Field, worst: pl.DataFrame, text_column: str | None
) -> list[Disagreement]:
    texts: dict[int, str | None] = {}
    if text_column is not None and text_column in graded.columns and worst.height:
        texts = _texts(graded, worst[ROW].to_list(), text_column)
    listed: list[Disagreement] = []
    for row, judge, label in worst.select(ROW, _JUDGE, _LABEL).iter_rows():
        x, y = (as_value(judge), as_value(label)) if field.kind == "ordinal" else (judge, label)
        difference = as_value(judge - label) if field.kind == "ordinal" else None
        listed.append(
            Disagreement(row=row, judge=x, label=y, difference=difference, text=texts.get(row))
        )
    return listed


def _texts(graded: GradedFile, rows: list[int], column: str) -> dict[int, str | None]:
    """The text of a few rows, cut short.

    Parquet reads just the row groups holding them (a slice per row); other formats are
    read through once, keeping only those rows.
    """
    value = text(column).alias("_text")
    if graded.format == "parquet":
        found = pl.concat(
            [graded.lazy.slice(r - 1, 1).select(pl.lit(r).alias(ROW), value) for r in rows]
        ).collect()
    else:
        found = graded.scan().filter(pl.col(ROW).is_in(rows)).select(ROW, value).collect()
    return {row: _cut(t) for row, t in found.iter_rows()}


def _cut(value: str | None) -> str | None:
    if value is None:
        return None
    flat = " ".join(value.split())
    return flat if len(flat) <= TEXT_CHARS else flat[: TEXT_CHARS - 1].rstrip() + "…"
