"""An input file as requests: rows rendered, counted and (when asked) serialised.

``Workload.blocks()`` streams the file in blocks of rows and yields, per block, the
sendable rows' indices, their request token counts and optionally their request lines.
Rows whose text is null, empty or blank are skipped (never sent) or, with
``fail_on_empty``, stop the run naming the row. Memory stays flat in the file's size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchgrader.data.reading import InputFile, open_input, require_columns
from batchgrader.errors import InputFileError
from batchgrader.planning.spec import RequestSpec
from batchgrader.prompting.prompts import Prompt, check_placeholders
from batchgrader.providers.base import RequestCodec, TokenCounter, custom_id, id_width

log = logging.getLogger(__name__)

_ROLES = ("system", "user")
#: Joins a folded system message to the user message (as the provider codecs do).
FOLD = "\n\n"

#: Input bytes per streamed batch, and the bounds on its rows. Smaller batches cost
#: little speed (measured in docs/benchmarks.md) and keep the peak memory low.
BATCH_BYTES = 16 * 1024 * 1024
MIN_BATCH_ROWS = 1_000
MAX_BATCH_ROWS = 50_000


@dataclass
class RowBlock:
    """One streamed block of input rows, prepared."""

    first_row: int
    n_rows: int
    rows: list[int]
    tokens: list[int]
    lines: list[str] | None = None
    skipped: list[int] = field(default_factory=list)


@dataclass
class Workload:
    """Everything needed to turn one input file into requests."""

    source: InputFile
    prompt: Prompt
    text_column: str
    counter: TokenCounter
    codec: RequestCodec
    fold_system: bool = False
    fail_on_empty: bool = False

    @classmethod
    def of(cls, path: Path, spec: RequestSpec) -> Workload:
        """Open and validate ``path`` for the requests ``spec`` describes, before any work."""
        prompt, text_column = spec.prompt, spec.text_column
        source = open_input(path, spec.format)
        require_columns(source, [text_column], "the graded column, --column")
        check_placeholders(prompt, source.columns, path)
        schema = source.scan().collect_schema()
        for column in prompt.columns(text_column):
            if isinstance(schema[column], (pl.Struct, pl.List, pl.Array)):
                raise InputFileError(
                    f"{path}: the column '{column}' used in the prompt holds nested values "
                    f"({schema[column]}), not text.",
                    hint="Use a column of plain values in the prompt.",
                )
        dtype = schema[text_column]
        if dtype not in (pl.String, pl.Null):
            raise InputFileError(
                f"{path}: the graded column '{text_column}' holds {dtype}, not text.",
                hint="Choose a text column with --column.",
            )
        return cls(
            source=source,
            prompt=prompt,
            text_column=text_column,
            counter=spec.counter,
            codec=spec.codec,
            fold_system=spec.options.fold_system,
            fail_on_empty=spec.fail_on_empty,
        )

    @property
    def id_width(self) -> int:
        return id_width(self.source.rows)

    def fixed_tokens(self) -> int | None:
        """Input tokens of every request whatever its row: the messages' overhead and a
        system message that is the same for every row (None when it depends on the row)."""
        system = self.prompt.system
        if not system.is_constant:
            return None
        text = system.render({"dynamic_examples": self.prompt.examples})
        roles = ("user",) if self.fold_system else _ROLES
        return self.counter.message_overhead(roles) + self.counter.count(text)

    def blocks(
        self, *, with_lines: bool = False, batch_rows: int | None = None
    ) -> Iterator[RowBlock]:
        """Stream the file's rows as prepared blocks, in input order.

        ``batch_rows`` defaults to about ``BATCH_BYTES`` of input per batch (see
        ``default_batch_rows``): the batch's text lives in memory up to three times
        (polars column, rendered messages, Python strings), so memory stays flat in the
        file's size and small beside polars' own read-ahead.
        """
        batch_rows = batch_rows or default_batch_rows(self.source)
        columns = self.prompt.columns(self.text_column)
        system_t, user_t = self.prompt.system, self.prompt.user
        examples = self.prompt.examples
        constant_system = (
            system_t.render({"dynamic_examples": examples}) if (system_t.is_constant) else None
        )
        # A folded system message is sent inside the user message: counted there.
        overhead = self.counter.message_overhead(("user",) if self.fold_system else _ROLES)
        if constant_system is not None and not self.fold_system:
            overhead += self.counter.count(constant_system)
        text = pl.col(self.text_column).cast(pl.String)  # an all-null column is Null-typed
        blank = text.is_null() | (text.str.strip_chars() == "")
        exprs = [user_t.expr(self.text_column, examples).alias("_user"), blank.alias("_blank")]
        if constant_system is None:
            exprs.append(system_t.expr(self.text_column, examples).alias("_system"))
        first = 0
        for df in self.source.iter_batches(columns, batch_rows):
            n_rows = df.height
            prepared = df.select(exprs)
            del df  # the batch's text is now in the rendered columns; free the input copy
            is_blank = prepared["_blank"]
            blank_rows: list[int] = []
            if is_blank.any():
                blank_rows = [first + i for i in is_blank.arg_true().to_list()]
                if self.fail_on_empty:
                    raise InputFileError(
                        f"{self.source.path}: row {blank_rows[0] + 1} has an empty or null "
                        f"'{self.text_column}'.",
                        hint="Fill it, or drop --fail-on-empty to skip such rows.",
                    )
                prepared = prepared.filter(~pl.col("_blank"))
                rows = [first + i for i in (~is_blank).arg_true().to_list()]
            else:  # the usual case: every row is sent, no filtered copy is made
                rows = list(range(first, first + n_rows))
            del is_blank
            users = prepared["_user"].to_list()
            systems = prepared["_system"].to_list() if constant_system is None else None
            del prepared
            if self.fold_system:
                sent = [
                    f"{constant_system if systems is None else s}{FOLD}{u}"
                    for s, u in zip(systems or users, users, strict=True)
                ]
                tokens = [t + overhead for t in self.counter.count_many(sent)]
                del sent
            elif systems is None:
                tokens = [t + overhead for t in self.counter.count_many(users)]
            else:
                tokens = self.counter.count_many(users)
                system_tokens = self.counter.count_many(systems)
                tokens = [t + s + overhead for t, s in zip(tokens, system_tokens, strict=True)]
            lines: list[str] | None = None
            if with_lines:
                ids = [custom_id(r, self.id_width) for r in rows]
                if systems is None:
                    assert constant_system is not None
                    lines = self.codec.constant_system_lines(ids, constant_system, users)
                else:
                    lines = self.codec.lines(ids, systems, users)
            del users, systems
            yield RowBlock(
                first_row=first,
                n_rows=n_rows,
                rows=rows,
                tokens=tokens,
                lines=lines,
                skipped=blank_rows,
            )
            first += n_rows


def default_batch_rows(source: InputFile) -> int:
    """Rows per streamed batch: about ``BATCH_BYTES`` of the input file."""
    try:
        size = source.path.stat().st_size
    except OSError:
        return MAX_BATCH_ROWS
    row_bytes = max(1, size // max(1, source.rows))
    return max(MIN_BATCH_ROWS, min(MAX_BATCH_ROWS, BATCH_BYTES // row_bytes))
