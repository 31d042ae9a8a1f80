"""``grade --labels COLUMN``: the labels checked before anything is submitted, and the
judge's agreement with them in the run summary."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel

from batchgrader.data import formats, reading
from batchgrader.data.formats import Format
from batchgrader.errors import BatchgraderError, InputFileError, UsageError
from batchgrader.execution.session import RunReport
from batchgrader.prompting.prompts import Prompt
from batchgrader.report.graded import ROW, SCORE, SCORE_COLUMN, Field, open_graded
from batchgrader.report.labels import compare, problem_exprs, raise_problem
from batchgrader.report.model import Agreement


class FileAgreement(BaseModel):
    """The judge's agreement with the labels in one graded file (or why there is none)."""

    input: str
    output: str | None
    agreement: Agreement | None
    problem: str | None


class LabelledRunReport(RunReport):
    """A run summary with each file's agreement (``grade --labels``)."""

    agreement: list[FileAgreement]


def check_labels(files: list[Path], column: str, fmt: Format | None, prompt: Prompt) -> None:
    """Fail before anything is submitted when an input lacks the labels column or holds
    a label off the prompt's score scale."""
    if prompt.schema is not None and SCORE not in prompt.schema.get("properties", {}):
        raise UsageError(
            "--labels compares labels with llm_score, and this answer schema has no score.",
            hint="Grade without --labels, then: batchgrader report FILE --field NAME --labels "
            f"{column}.",
        )
    field = Field(SCORE, SCORE_COLUMN, "ordinal", prompt.scale.min, prompt.scale.max, True)
    for path in files:
        scan = reading.scan_table(path, formats.format_of(path, fmt))
        try:
            columns = scan.collect_schema().names()
            if column not in columns:
                raise InputFileError(
                    f"{path}: no labels column '{column}'.",
                    hint="Columns in the file: " + ", ".join(columns) + ".",
                )
            found = (
                scan.with_row_index(ROW, offset=1)
                .select(problem_exprs(field, column))
                .collect()
                .row(0, named=True)
            )
        except pl.exceptions.PolarsError:
            continue  # the input's own validation names the problem
        raise_problem(found, path, field, column)


def with_agreement(
    report: RunReport, column: str, fmt: Format | None, text_column: str
) -> LabelledRunReport:
    """``report`` with the agreement of each graded file with its ``column``."""
    found: list[FileAgreement] = []
    for summary in report.files:
        agreement, problem = None, None
        if summary.output is None:
            problem = "no graded file yet (the job is still running)"
        else:
            try:
                graded = open_graded(Path(summary.output), fmt, None, labels=column)
                agreement = compare(graded, graded.field(SCORE), column, text_column)
            except BatchgraderError as exc:
                problem = exc.message
        found.append(
            FileAgreement(
                input=summary.input, output=summary.output, agreement=agreement, problem=problem
            )
        )
    return LabelledRunReport(**report.model_dump(), agreement=found)
