"""A graded file as the report reads it: its answer fields and what kind each is.

A graded file is the input's columns plus ``llm_score``, ``llm_response``,
``llm_error`` and one ``llm_<field>`` per answer-schema field. CSV and TSV files read
back as text, and schema fields are text in every format (they are cut out of the
answer's JSON), so every value is read as trimmed text first: empty is missing, and a
number is whatever parses as a finite number.

A field holding numbers is ``ordinal`` (a score scale); one holding a few short
strings is ``categorical``. When the ledger knows the job, its answer schema decides:
``integer`` and ``number`` are ordinal with the schema's bounds, an ``enum`` or a
``boolean`` is categorical, other strings are free text and not reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from batchgrader.data import formats, reading
from batchgrader.data.formats import Format
from batchgrader.errors import InputFileError, UsageError
from batchgrader.report.job import JobFacts
from batchgrader.report.model import Kind, Value

PREFIX = "llm_"
SCORE = "score"
SCORE_COLUMN = "llm_score"
ERROR_COLUMN = "llm_error"
RESPONSE_COLUMN = "llm_response"
ROW = "_row"  # 1-based row number, added by ``scan``
#: Free-text fields batchgrader's own answer schema adds (``reasoning = true``).
TEXT_FIELDS = frozenset({"reasoning"})
#: A field with more distinct values than this is not a scale or a set of categories.
MAX_VALUES = 100
#: Without a schema, strings are categories when there are at most this many distinct
#: values, none longer than ``MAX_CATEGORY_CHARS`` characters; longer ones are free text.
MAX_CATEGORIES = 20
MAX_CATEGORY_CHARS = 40

#: What the error codes batchgrader writes in ``llm_error`` mean; any other code is the
#: provider's own (``invalid_prompt``, ``server_error``, ``http_500`` ...).
ERROR_MEANINGS = {
    "unparseable": "the answer held no valid score",
    "refused": "the model refused to answer",
    "truncated": "the answer was cut at the token limit",
    "skipped": "empty text, never sent",
    "not_run": "never ran (job stopped, or missing from the batch)",
    "batch_expired": "its batch expired before it ran",
}
PROVIDER_ERROR = "the provider failed the request"


def error_meaning(code: str) -> str:
    """What an ``llm_error`` code means, for people."""
    return ERROR_MEANINGS.get(code, PROVIDER_ERROR)


@dataclass(frozen=True)
class Field:
    """One reported answer field of a graded file."""

    name: str
    column: str
    kind: Kind
    low: Value | None = None  # known bounds of an ordinal scale
    high: Value | None = None
    whole: bool | None = None  # whole numbers only (None: unknown, as the judge gives)
    categories: tuple[str, ...] = ()  # known values of a categorical field

    @property
    def scale(self) -> list[Value] | None:
        if self.low is None or self.high is None:
            return None
        return [self.low, self.high]


@dataclass(frozen=True)
class GradedFile:
    """A readable graded file: its shape and its reportable fields."""

    path: Path
    format: Format
    columns: tuple[str, ...]
    rows: int
    lazy: pl.LazyFrame
    fields: list[Field]
    not_reported: dict[str, str] = field(default_factory=dict)

    def scan(self) -> pl.LazyFrame:
        """The file with a 1-based row number column ``_row``."""
        return self.lazy.with_row_index(ROW, offset=1)

    def field(self, name: str | None) -> Field:
        """The field to report: ``name``, or the score (or the first field) by default."""
        if name is None:
            if SCORE_COLUMN not in self.columns or not self.fields:
                raise InputFileError(
                    f"{self.path}: no score column (llm_score): not a file batchgrader graded.",
                    hint="Report an answer field with --field NAME (its column is llm_NAME).",
                )
            return self.fields[0]
        wanted = name.removeprefix(PREFIX)
        found = next((f for f in self.fields if f.name == wanted), None)
        if found is not None:
            return found
        column = PREFIX + wanted
        if column in self.not_reported:
            raise UsageError(f"{self.path}: {column} {self.not_reported[column]}.")
        names = ", ".join(f.name for f in self.fields) or "none"
        raise UsageError(
            f"{self.path}: no answer field '{wanted}' (no column {column}).",
            hint=f"Fields in the file: {names}.",
        )


def text(column: str) -> pl.Expr:
    """A column as trimmed text; empty is missing."""
    value = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(value != "").then(value)


def number(column: str) -> pl.Expr:
    """A column as a finite number, missing when it is not one."""
    value = text(column).cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def not_a_number(column: str) -> pl.Expr:
    """True where a column holds a value that is not a finite number."""
    return text(column).is_not_null() & number(column).is_null()


def as_value(x: float) -> Value:
    """A number as reported: whole numbers as ``int``."""
    return int(x) if x.is_integer() else x


def value_key(value: Value) -> str:
    """A value as a JSON key and a label: ``4``, ``3.5``, ``good``."""
    return str(value)


def open_graded(
    path: Path, fmt: Format | None, job: JobFacts | None, labels: str | None = None
) -> GradedFile:
    """Read a graded file's shape and find its reportable fields (score first); the
    ``labels`` column is never one of them."""
    fmt, lazy, columns = _open(path, fmt)
    candidates = [
        c
        for c in columns
        if c.startswith(PREFIX)
        and c not in (ERROR_COLUMN, RESPONSE_COLUMN, labels)
        and len(c) > len(PREFIX)
    ]
    if SCORE_COLUMN in candidates:  # the score first, then the schema's fields in order
        candidates.remove(SCORE_COLUMN)
        candidates.insert(0, SCORE_COLUMN)
    rows, probe = _probe(path, fmt, lazy, candidates)
    if rows == 0:
        raise InputFileError(f"{path}: the file has no rows.")
    fields: list[Field] = []
    not_reported: dict[str, str] = {}
    schema = _properties(job)
    for column in candidates:
        name = column.removeprefix(PREFIX)
        facts = probe[column]
        if name == SCORE:
            found: Field | str = _score_field(path, job, facts)
        elif schema is not None and name in schema:
            found = _schema_field(name, column, schema[name], facts)
        else:
            found = _guessed_field(name, column, facts)
        if isinstance(found, Field):
            fields.append(found)
        else:
            not_reported[column] = found
    empty_score = fields and fields[0].name == SCORE and not probe[SCORE_COLUMN]["values"]
    if empty_score and len(fields) > 1:  # a schema without a score: its first field instead
        not_reported[SCORE_COLUMN] = "holds no score (the answer schema has no score)"
        fields.pop(0)
    return GradedFile(path, fmt, columns, rows, lazy, fields, not_reported)


def _open(path: Path, fmt: Format | None) -> tuple[Format, pl.LazyFrame, tuple[str, ...]]:
    """The file's format, a lazy scan of it and its columns.

    Unlike an input, a graded file is not checked row by row before it is read (a
    second pass over a big CSV): when polars cannot read it, ``open_input`` is asked
    where the problem is, and names the line.
    """
    fmt = formats.format_of(path, fmt)
    try:
        if not path.is_file():
            raise pl.exceptions.ComputeError("not a file")
        lazy = reading.scan_table(path, fmt)
        return fmt, lazy, tuple(lazy.collect_schema().names())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _located(path, fmt, exc) from None


def _located(path: Path, fmt: Format, exc: Exception) -> InputFileError:
    """The error ``open_input`` finds in a file polars could not read (or a generic one)."""
    try:
        reading.open_input(path, fmt)
    except InputFileError as located:
        return located
    return InputFileError(f"{path}: cannot be read ({first_line(exc)}).")


def _probe(
    path: Path, fmt: Format, lazy: pl.LazyFrame, columns: list[str]
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Rows, and per column: values, non-numbers (the first one and its row), distinct
    values, longest value; one pass over the file."""
    exprs: list[pl.Expr] = [pl.len().alias("rows")]
    for i, c in enumerate(columns):
        bad = not_a_number(c)
        exprs += [
            text(c).count().alias(f"values{i}"),
            bad.sum().alias(f"bad{i}"),
            pl.col(ROW).filter(bad).first().alias(f"bad_row{i}"),
            text(c).filter(bad).first().alias(f"bad_value{i}"),
            text(c).drop_nulls().n_unique().alias(f"distinct{i}"),
            text(c).str.len_chars().max().alias(f"longest{i}"),
        ]
    try:
        found = lazy.with_row_index(ROW, offset=1).select(exprs).collect().row(0)
    except pl.exceptions.PolarsError as exc:
        raise _located(path, fmt, exc) from None
    keys = ("values", "bad", "bad_row", "bad_value", "distinct", "longest")
    width = len(keys)
    return int(found[0]), {
        c: dict(zip(keys, found[1 + i * width : 1 + (i + 1) * width], strict=True))
        for i, c in enumerate(columns)
    }


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (polars' run to many)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _properties(job: JobFacts | None) -> dict[str, dict[str, Any]] | None:
    if job is None or job.schema is None:
        return None
    props = job.schema.get("properties")
    return props if isinstance(props, dict) else None


def _score_field(path: Path, job: JobFacts | None, facts: dict[str, Any]) -> Field | str:
    if facts["bad"]:
        raise InputFileError(
            f"{path}: {SCORE_COLUMN} is not numeric: row {facts['bad_row']} holds "
            f"{facts['bad_value']!r}."
        )
    low, high = job.scale if job is not None and job.scale is not None else (None, None)
    return Field(SCORE, SCORE_COLUMN, "ordinal", low, high, whole=True)


def _schema_field(name: str, column: str, prop: Any, facts: dict[str, Any]) -> Field | str:
    """A field as the job's answer schema declares it."""
    if not isinstance(prop, dict):
        return "is not a number or a category in the answer schema"
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    enum = prop.get("enum")
    if kind in ("integer", "number"):
        if facts["bad"]:
            return f"is not numeric: row {facts['bad_row']} holds {facts['bad_value']!r}"
        if facts["distinct"] > MAX_VALUES:
            return f"has {facts['distinct']:,} distinct values: not a scale"
        low, high = prop.get("minimum"), prop.get("maximum")
        whole = kind == "integer"
        if isinstance(low, int | float) and isinstance(high, int | float):
            return Field(
                name, column, "ordinal", as_value(float(low)), as_value(float(high)), whole
            )
        return Field(name, column, "ordinal", whole=whole)
    if isinstance(enum, list) and enum:
        return Field(name, column, "categorical", categories=tuple(str(v) for v in enum))
    if kind == "boolean":
        return Field(name, column, "categorical", categories=("false", "true"))
    if kind == "string":
        return "is free text"
    return "is not a number or a category in the answer schema"


def _guessed_field(name: str, column: str, facts: dict[str, Any]) -> Field | str:
    """A field read without its schema: numbers are ordinal, a few short strings a category."""
    if name in TEXT_FIELDS:
        return "is free text"
    if not facts["values"]:
        return "holds no values"
    if not facts["bad"]:
        if facts["distinct"] > MAX_VALUES:
            return f"has {facts['distinct']:,} distinct values: not a scale"
        return Field(name, column, "ordinal")
    if facts["distinct"] <= MAX_CATEGORIES and facts["longest"] <= MAX_CATEGORY_CHARS:
        return Field(name, column, "categorical")
    return "is free text (or too many different values to be categories)"


def scale_values(field: Field, observed: list[Value]) -> list[Value]:
    """Every value a field's distribution and confusion matrix show, sorted.

    A whole-number scale shows every step from its lowest to its highest value (the
    known bounds, widened by what was observed), so a value nobody gave shows as 0; a
    category field shows its known categories and every observed one.
    """
    if field.kind == "categorical":
        return sorted({*field.categories, *(str(v) for v in observed)})
    numbers = [v for v in (*observed, field.low, field.high) if isinstance(v, int | float)]
    if not numbers:
        return []
    if all(float(v).is_integer() for v in numbers):
        low, high = int(min(numbers)), int(max(numbers))
        if high - low < MAX_VALUES:
            return list(range(low, high + 1))
    return sorted({as_value(float(v)) for v in observed})
