"""The final merge: every row's latest result, zipped onto the input in input order.

Results are read back a window of rows at a time and staged on disk one row per input
row, so the merge is a row-by-row zip of two streams (memory flat in the file's size),
never a join holding every result. The columns batchgrader uses internally get names
that no input column has, so a user's ``_row`` or ``llm_fields`` never collides.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from batchgrader.data.atomic import atomic_path
from batchgrader.data.formats import Format, format_of
from batchgrader.data.reading import InputFile
from batchgrader.data.writing import sink_rows
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.results import RESULT_SCHEMA
from batchgrader.ledger.records import ChunkRow, ChunkStatus, JobRow
from batchgrader.prompting.prompts import Prompt

log = logging.getLogger(__name__)

#: Rows per window when a job's results are read back: memory follows one window's
#: results (a batch holds at most 100,000 rows), not the size of the input.
WINDOW_ROWS = 50_000
#: The result columns of a graded file.
OUTPUT_COLUMNS = ("llm_score", "llm_response", "llm_error")
HALTED = "not_run: the job stopped before this row's chunk was submitted"


def unique_name(base: str, taken: Sequence[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... whichever no column of ``taken`` has."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def field_columns(prompt: Prompt) -> list[str]:
    """The answer fields that become their own columns (all but score)."""
    if prompt.schema is None and not prompt.reasoning:
        return []
    return [name for name in prompt.answer_schema()["properties"] if name != "score"]


def output_columns(prompt: Prompt) -> list[str]:
    """Every column a graded file adds to the input's."""
    return [*OUTPUT_COLUMNS, *(f"llm_{name}" for name in field_columns(prompt))]


def results_kept(settings_files: JobFiles, chunks: list[ChunkRow]) -> bool:
    """Whether every collected chunk's row results are still on disk."""
    return all((settings_files.results / c.result_file).exists() for c in chunks if c.result_file)


def _scan_results(files: list[Path]) -> pl.LazyFrame:
    """Stored result files, as today's schema (files of earlier versions converted)."""
    frames = []
    for path in files:
        frame = pl.scan_parquet(path)
        names = frame.collect_schema().names()
        if "llm_error" in names:  # written before 0.2: one "code: message" column
            error = pl.col("llm_error")
            frame = frame.select(
                pl.col("row"),
                pl.col("llm_score").alias("score"),
                pl.col("llm_response").alias("response"),
                error.str.split_exact(": ", 1).struct.field("field_0").alias("error_code"),
                error.str.split_exact(": ", 1).struct.field("field_1").alias("error_message"),
                pl.col("llm_fields").alias("fields"),
                *(pl.lit(0, dtype=pl.Int64).alias(name) for name in list(RESULT_SCHEMA)[6:]),
            )
        frames.append(frame)
    return pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=RESULT_SCHEMA)


def result_windows(
    files: JobFiles, job: JobRow, chunks: list[ChunkRow]
) -> Iterator[tuple[int, pl.LazyFrame]]:
    """(first row, latest result of each row in the window), a window of rows at a time.

    A retried row's latest result wins. Row ``r`` of the input is row ``r`` of the
    job; the windows cover ``0..job.rows`` (at least one, possibly empty). Each
    chunk's result file holds a known range of rows, so a window's filter skips every
    file outside it from the file's statistics.
    """
    paths = [files.results / c.result_file for c in chunks if c.result_file]
    for first in range(0, max(job.rows, 1), WINDOW_ROWS):
        last = min(job.rows, first + WINDOW_ROWS) - 1
        if not paths:
            yield first, pl.LazyFrame(schema=RESULT_SCHEMA)
            continue
        found = _scan_results(paths).filter(pl.col("row").is_between(first, last))
        yield first, found.unique(subset="row", keep="last", maintain_order=True)


@contextmanager
def aligned_results(files: JobFiles, job: JobRow, chunks: list[ChunkRow]) -> Iterator[pl.LazyFrame]:
    """Every row's latest result, one row per input row in input order.

    Staged on disk a window at a time under the job folder (removed on exit). The frame
    has the result columns without ``row``.
    """
    folder = files.folder / "aligned"
    shutil.rmtree(folder, ignore_errors=True)  # left by a crash during an earlier merge
    folder.mkdir(mode=0o700, parents=True)
    try:
        for first, found in result_windows(files, job, chunks):
            end = min(job.rows, first + WINDOW_ROWS)
            window = pl.select(pl.int_range(first, end, dtype=pl.Int64).alias("row")).lazy()
            path = folder / f"rows-{first:012d}.parquet"
            window.join(found, on="row", how="left", maintain_order="left").drop(
                "row"
            ).sink_parquet(path)
            os.chmod(path, 0o600)
        yield pl.scan_parquet(sorted(folder.glob("rows-*.parquet")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def error_column(code: pl.Expr, message: pl.Expr) -> pl.Expr:
    """``code: message`` (or the code alone), as a graded file shows a row's error."""
    return (
        pl.when(message.is_null() | (message == ""))
        .then(code)
        .otherwise(pl.concat_str([code, pl.lit(": "), message]))
    )


def graded_rows(
    source: pl.LazyFrame,
    columns: Sequence[str],
    text_column: str,
    results: pl.LazyFrame,
    chunks: list[ChunkRow],
    prompt: Prompt,
) -> pl.LazyFrame:
    """The input's rows with the result columns added, in input order."""
    row = unique_name("_row", columns)
    blank = unique_name("_blank", columns)
    fields = unique_name("_fields", columns)
    unrun = pl.lit(HALTED)
    for chunk in chunks:  # a chunk whose batch failed (validation): its rows carry its error
        if chunk.status is ChunkStatus.FAILED and not chunk.result_file and chunk.error:
            in_chunk = pl.col(row).is_between(chunk.first_row, chunk.last_row)
            unrun = pl.when(in_chunk).then(pl.lit(chunk.error)).otherwise(unrun)
    text = pl.col(text_column).cast(pl.String)  # an all-null column is Null-typed
    ours = output_columns(prompt)
    clashing = [name for name in columns if name in ours]
    base = source.drop(clashing) if clashing else source
    base = base.with_columns((text.is_null() | (text.str.strip_chars() == "")).alias(blank))
    found = results.select(
        pl.col("score").alias("llm_score"),
        pl.col("response").alias("llm_response"),
        error_column(pl.col("error_code"), pl.col("error_message")).alias("llm_error"),
        pl.col("fields").alias(fields),
    )
    merged = pl.concat([base.with_row_index(row), found], how="horizontal").with_columns(
        pl.when(pl.col("llm_error").is_null() & pl.col("llm_response").is_null() & pl.col(blank))
        .then(pl.lit("skipped: empty text"))
        .when(pl.col("llm_error").is_null() & pl.col("llm_response").is_null())
        .then(unrun)
        .otherwise(pl.col("llm_error"))
        .alias("llm_error")
    )
    expanded = [
        pl.col(fields).str.json_path_match(f"$.{name}").alias(f"llm_{name}")
        for name in field_columns(prompt)
    ]
    return merged.with_columns(expanded).drop(row, blank, fields)


def write_output(
    source: InputFile,
    text_column: str,
    prompt: Prompt,
    chunks: list[ChunkRow],
    results: pl.LazyFrame,
    target: Path,
    out_format: Format | None,
) -> list[str]:
    """Zip the row-aligned ``results`` onto the input and write it atomically.

    Returns the input columns that were replaced (a graded file graded again). A JSONL
    input graded to JSONL keeps each input line as it was (a column mixing numbers and
    text keeps both, a number keeps its spelling): the result fields are added to it.
    """
    clashing = [name for name in source.columns if name in output_columns(prompt)]
    fmt = out_format or format_of(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.format == "jsonl" and fmt == "jsonl":
        added = graded_rows(
            source.scan([text_column]), [text_column], text_column, results, chunks, prompt
        ).select(output_columns(prompt))
        try:
            with atomic_path(target) as tmp:  # (nothing is written if it stops half-way)
                _append_fields(source.path, added, tmp, replace=bool(clashing))
            return clashing
        except _Misaligned:
            log.warning("%s: its lines do not match its rows one to one.", source.path)
    merged = graded_rows(source.scan(), source.columns, text_column, results, chunks, prompt)
    with atomic_path(target) as tmp:
        sink_rows(merged, tmp, fmt)
    return clashing


def _object_lines(path: Path) -> Iterator[bytes]:
    """The JSON object lines of a JSONL file, as polars counts its rows (blank lines and
    a leading byte order mark left out)."""
    with path.open("rb") as handle:
        first = True
        for raw in handle:
            if first:
                raw = raw.removeprefix(codecs.BOM_UTF8)
                first = False
            line = raw.strip()
            if line:
                yield line


class _Misaligned(Exception):
    """The input's lines and its rows (as polars reads them) do not match one to one."""


def _append_fields(source: Path, added: pl.LazyFrame, target: Path, *, replace: bool) -> None:
    """Write each input line with ``added``'s fields appended (``_Misaligned`` when the
    lines and the rows do not match one to one: the file is then written the polars way)."""
    lines = _object_lines(source)
    with target.open("wb") as out:
        for batch in added.collect_batches(chunk_size=WINDOW_ROWS):
            encoded = io.BytesIO()
            batch.write_ndjson(encoded)
            for fields in encoded.getvalue().splitlines():
                line = next(lines, None)
                if line is None:
                    raise _Misaligned
                out.write(_with_fields(line, fields, replace=replace) + b"\n")
    if next(lines, None) is not None:
        raise _Misaligned


def _with_fields(line: bytes, fields: bytes, *, replace: bool) -> bytes:
    """``line`` (a JSON object) with the members of ``fields`` (another) added at its end;
    with ``replace``, members of the same names are dropped from the line first."""
    if replace:
        names = json.loads(fields).keys()
        kept = {k: v for k, v in json.loads(line).items() if k not in names}
        line = json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode()
    inner = line[:-1].rstrip()
    empty = inner.endswith(b"{")
    return inner + (b"" if empty else b",") + fields[1:-1] + b"}"
