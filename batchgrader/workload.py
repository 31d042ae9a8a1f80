"""An input file as requests: rows rendered, counted and (when asked) serialised.

``Workload.batches()`` streams the file in batches of rows and yields, per batch, the
sendable rows' indices, exact request token counts and optionally their JSONL lines.
Rows whose text is null, empty or blank are skipped (never sent) or, with
``fail_on_empty``, stop the run naming the row. Memory stays flat in the file's size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchgrader import batchfile
from batchgrader.batchfile import LineBuilder, RequestOptions
from batchgrader.datafiles import Format, InputFile, open_input, require_columns
from batchgrader.errors import InputFileError
from batchgrader.prompts import Prompt, check_placeholders
from batchgrader.tokens import Counter

log = logging.getLogger(__name__)

_ROLES = ("system", "user")


@dataclass
class RowBatch:
    """One streamed batch of input rows, prepared."""

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
    counter: Counter
    builder: LineBuilder
    fail_on_empty: bool = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        prompt: Prompt,
        text_column: str,
        options: RequestOptions,
        counter: Counter,
        fmt: Format | None = None,
        fail_on_empty: bool = False,
    ) -> Workload:
        """Open and validate ``path`` against the prompt before any work."""
        source = open_input(path, fmt)
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
            counter=counter,
            builder=LineBuilder(options, prompt),
            fail_on_empty=fail_on_empty,
        )

    @property
    def id_width(self) -> int:
        return batchfile.id_width(self.source.rows)

    def batches(self, *, with_lines: bool = False, batch_rows: int = 50_000) -> Iterator[RowBatch]:
        """Stream the file's rows as prepared batches, in input order."""
        columns = self.prompt.columns(self.text_column)
        system_t, user_t = self.prompt.system, self.prompt.user
        examples = self.prompt.examples
        constant_system = (
            system_t.render({"dynamic_examples": examples}) if (system_t.is_constant) else None
        )
        overhead = self.counter.message_overhead(_ROLES)
        if constant_system is not None:
            overhead += self.counter.count(constant_system)
        text = pl.col(self.text_column)
        blank = text.is_null() | (text.str.strip_chars() == "")
        user_expr = user_t.expr(self.text_column, examples).alias("_user")
        exprs = [user_expr, blank.alias("_blank")]
        if constant_system is None:
            exprs.append(system_t.expr(self.text_column, examples).alias("_system"))
        first = 0
        for df in self.source.iter_batches(columns, batch_rows):
            prepared = df.select(exprs).with_row_index("_row", offset=first)
            blank_rows = prepared.filter(pl.col("_blank"))["_row"].to_list()
            if blank_rows and self.fail_on_empty:
                raise InputFileError(
                    f"{self.source.path}: row {blank_rows[0] + 1} has an empty or null "
                    f"'{self.text_column}'.",
                    hint="Fill it, or drop --fail-on-empty to skip such rows.",
                )
            sendable = prepared.filter(~pl.col("_blank"))
            rows = sendable["_row"].to_list()
            users = sendable["_user"].to_list()
            tokens = self.counter.count_many(users)
            systems: list[str] | None = None
            if constant_system is None:
                systems = sendable["_system"].to_list()
                system_tokens = self.counter.count_many(systems)
                tokens = [t + s + overhead for t, s in zip(tokens, system_tokens, strict=True)]
            else:
                tokens = [t + overhead for t in tokens]
            lines: list[str] | None = None
            if with_lines:
                ids = [batchfile.custom_id(r, self.id_width) for r in rows]
                if systems is None:
                    assert constant_system is not None
                    lines = self.builder.constant_system_lines(ids, constant_system, users)
                else:
                    lines = self.builder.lines(ids, systems, users)
            yield RowBatch(
                first_row=first,
                n_rows=df.height,
                rows=rows,
                tokens=tokens,
                lines=lines,
                skipped=blank_rows,
            )
            first += df.height
