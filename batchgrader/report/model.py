"""The report's result models: what ``batchgrader report`` prints and ``--json`` emits.

Figures are plain numbers: shares and metrics are floats in 0..1 (kappa and rho in
-1..1), never rounded strings; money is exact ``Decimal`` in Python and a JSON number in
``--json``. A metric that is undefined for the data is ``None`` (JSON ``null``) and
``Agreement.undefined`` says why.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

Kind = Literal["ordinal", "categorical"]

#: A judge's or a label's value: a whole or fractional number on an ordinal scale, or a
#: category. Whole numbers stay ``int`` so JSON shows ``4``, not ``4.0``.
Value = int | float | str

#: Dollars: exact in Python, a JSON number in ``--json`` (the project's convention).
Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class FieldSummary(BaseModel):
    """One answer field: how many rows hold a value and how the values are spread."""

    field: str
    column: str
    kind: Kind
    scale: list[Value] | None  # the known [min, max] of an ordinal field
    scored: int
    distribution: dict[str, int]
    shares: dict[str, float]
    mean: float | None
    median: float | None


class PerRow(BaseModel):
    """Tokens and dollars per answered row."""

    input_tokens: float
    output_tokens: float
    total_tokens: float
    cost: Money | None


class JobUsage(BaseModel):
    """The tokens and dollars the ledger recorded for the job that wrote the file."""

    job_id: str
    model: str
    batches: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Money | None
    unpriced_batches: int
    answered: int
    per_row: PerRow | None


class Confusion(BaseModel):
    """Counts of (label, judge) pairs: rows are the label, columns the judge."""

    labels: list[str]
    matrix: list[list[int]]


class Intervals(BaseModel):
    """Percentile bootstrap intervals, seeded so the same file gives the same interval."""

    exact: tuple[float, float] | None
    quadratic_weighted_kappa: tuple[float, float] | None
    level: float
    resamples: int
    seed: int


class Disagreement(BaseModel):
    """A row where judge and label differ (row numbers are 1-based)."""

    row: int
    judge: Value
    label: Value
    difference: int | float | None  # judge minus label; None for categories
    text: str | None


class Agreement(BaseModel):
    """How the judge agrees with a label column on the rows that have both."""

    labels_column: str
    kind: Kind
    n: int
    unlabelled: int
    unscored: int
    exact: float
    within_one: float | None
    cohen_kappa: float | None
    quadratic_weighted_kappa: float | None
    spearman: float | None
    mae: float | None
    mean_difference: float | None
    confusion: Confusion
    ci: Intervals
    undefined: dict[str, str]
    disagreements: list[Disagreement]


class JudgeReport(BaseModel):
    """Everything ``batchgrader report`` says about one graded file.

    The top level describes the reported field (``llm_score``, or ``--field``);
    ``fields`` the file's other number and category fields.
    """

    file: str
    format: str
    rows: int
    field: str
    column: str
    kind: Kind
    scale: list[Value] | None
    scored: int
    failed: dict[str, int]
    distribution: dict[str, int]
    shares: dict[str, float]
    mean: float | None
    median: float | None
    fields: list[FieldSummary]
    not_reported: dict[str, str]
    usage: JobUsage | None
    agreement: Agreement | None
