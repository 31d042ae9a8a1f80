"""Row results of a job: what each row's answer came to, stored a chunk at a time.

Result lines are read by the provider's codec and joined to rows by ``custom_id``,
never by position. Each row gets its score (or its answer fields), the judge's text,
its error as a code and a message kept apart, and its own usage. A row that the
result files do not mention gets the chunk's "not run" error; a row answered twice
with different answers is marked, never silently decided.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchgrader.data.atomic import atomic_path
from batchgrader.money.pricing import Usage
from batchgrader.prompting.answers import parse_answer
from batchgrader.prompting.options import AnswerMode
from batchgrader.prompting.prompts import Prompt
from batchgrader.providers.base import Answer, RequestCodec, RowError, read_lines, row_of

#: The columns of a stored result file (one row per answered or failed input row).
RESULT_SCHEMA: dict[str, type[pl.DataType] | pl.DataType] = {
    "row": pl.Int64,
    "score": pl.Int64,
    "response": pl.String,
    "error_code": pl.String,
    "error_message": pl.String,
    "fields": pl.String,
    "input_tokens": pl.Int64,
    "cached_tokens": pl.Int64,
    "cache_write_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "reasoning_tokens": pl.Int64,
}
#: Row errors that sending the same request again cannot fix: the judge answered
#: (unusably), or the provider refuses the request as it is.
PERMANENT_ERRORS = frozenset(
    {
        "unparseable",
        "skipped",
        "refused",
        "truncated",
        "invalid_prompt",
        "invalid_request_error",
        "invalid_request",
        "invalid_value",
        "unsupported_parameter",
        "unsupported_value",
        "context_length_exceeded",
        "string_above_max_length",
        "content_policy_violation",
        "content_filter",
        "model_not_found",
        "not_found_error",
        "permission_error",
        "authentication_error",
    }
)
#: HTTP statuses of the 4xx family that are worth trying again.
_RETRYABLE_4XX = ("http_408", "http_409", "http_429")


def is_permanent(code: str) -> bool:
    """Whether a row error is permanent (see ``PERMANENT_ERRORS``; other 4xx too)."""
    return code in PERMANENT_ERRORS or (code.startswith("http_4") and code not in _RETRYABLE_4XX)


def permanent(code: pl.Expr) -> pl.Expr:
    """``is_permanent`` as a polars expression."""
    return code.is_in(list(PERMANENT_ERRORS)) | (
        code.str.starts_with("http_4") & ~code.is_in(list(_RETRYABLE_4XX))
    )


@dataclass
class ChunkResults:
    """Per-row results of one chunk (or one group of direct answers), and their tally."""

    rows: list[int] = field(default_factory=list)
    scores: list[int | None] = field(default_factory=list)
    responses: list[str | None] = field(default_factory=list)
    codes: list[str | None] = field(default_factory=list)
    messages: list[str | None] = field(default_factory=list)
    fields: list[str | None] = field(default_factory=list)
    usages: list[Usage] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error_codes: Counter[str] = field(default_factory=Counter)
    malformed_lines: int = 0
    duplicates: int = 0

    def add(
        self,
        row: int,
        score: int | None,
        response: str | None,
        error: RowError | None,
        fields_json: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        usage = usage or Usage()
        self.rows.append(row)
        self.scores.append(score)
        self.responses.append(response)
        self.codes.append(error.code if error else None)
        self.messages.append(error.message if error else None)
        self.fields.append(fields_json)
        self.usages.append(usage)
        self.usage = self.usage + usage
        if error is not None:
            self.error_codes[error.code] += 1

    def add_answer(self, row: int, answer: Answer, prompt: Prompt, mode: AnswerMode) -> None:
        """Score one row's answer (an answer with an error keeps its text, unscored)."""
        if answer.error is not None:
            self.add(row, None, answer.text, answer.error, None, answer.usage)
            return
        score, problem, data = parse_answer(answer.text, prompt, mode)
        error = RowError("unparseable", problem) if problem is not None else None
        fields_json = json.dumps(data, ensure_ascii=False) if data is not None else None
        self.add(row, score, answer.text, error, fields_json, answer.usage)

    @property
    def succeeded(self) -> int:
        return sum(1 for c in self.codes if c is None)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "row": self.rows,
                "score": self.scores,
                "response": self.responses,
                "error_code": self.codes,
                "error_message": self.messages,
                "fields": self.fields,
                "input_tokens": [u.input_tokens for u in self.usages],
                "cached_tokens": [u.cached_input_tokens for u in self.usages],
                "cache_write_tokens": [u.cache_write_tokens for u in self.usages],
                "output_tokens": [u.output_tokens for u in self.usages],
                "reasoning_tokens": [u.reasoning_tokens for u in self.usages],
            },
            schema=RESULT_SCHEMA,
        )

    def write(self, path: Path) -> None:
        """Store the rows atomically, readable by the user only."""
        with atomic_path(path) as tmp:  # a crash never leaves half a result file
            self.frame().write_parquet(tmp)
            os.chmod(tmp, 0o600)


def parse_result_files(
    files: Iterable[Path],
    expected_rows: set[int],
    codec: RequestCodec,
    prompt: Prompt,
    mode: AnswerMode,
    not_run: RowError,
) -> ChunkResults:
    """Read a batch's result files; rows in none of them get ``not_run``."""
    answers: dict[int, Answer] = {}
    duplicated: dict[int, int] = {}
    extra = Usage()
    results = ChunkResults()
    for path in files:
        for raw in read_lines(path):
            line = codec.parse_line(raw)
            row = row_of(line.custom_id) if line.custom_id is not None else None
            if line.answer is None or row is None or row not in expected_rows:
                results.malformed_lines += 1
                continue
            if row in answers:
                if answers[row] != line.answer:
                    duplicated[row] = duplicated.get(row, 1) + 1
                extra = extra + line.answer.usage  # every answer given was billed
                continue
            answers[row] = line.answer
    for row in sorted(expected_rows):
        answer = answers.get(row)
        if answer is None:
            results.add(row, None, None, not_run)
        elif row in duplicated:
            # The provider answered this row more than once, differently: no answer is
            # chosen behind the user's back (every answer's usage was billed).
            results.duplicates += 1
            error = RowError(
                "duplicate_result",
                f"the batch returned {duplicated[row]} different answers for this row",
            )
            results.add(row, None, answer.text, error, None, answer.usage)
        else:
            results.add_answer(row, answer, prompt, mode)
    results.usage = results.usage + extra
    return results
