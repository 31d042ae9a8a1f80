"""Input files: CSV, TSV, JSON (array of objects), JSONL and Parquet, read lazily.

Inputs are read lazily with polars and streamed in batches, so a big file never needs
several copies in memory; CSV and TSV columns are read as text, so every value comes
back out exactly as it went in. Validation happens before any work (see
``validation``). Inputs are never modified.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batchgrader.data.formats import FORMATS, SEPARATORS, Format, format_of
from batchgrader.data.validation import check_csv_rows, check_header, located_error
from batchgrader.errors import InputFileError, UsageError

log = logging.getLogger(__name__)

_STREAM_ROWS = 50_000


@dataclass(frozen=True)
class InputFile:
    """A validated input: its path, format, columns and row count."""

    path: Path
    format: Format
    columns: tuple[str, ...]
    rows: int

    def scan(self, columns: list[str] | None = None) -> pl.LazyFrame:
        """A lazy frame of the file (only ``columns`` when given)."""
        lf = scan_table(self.path, self.format)
        return lf.select(columns) if columns is not None else lf

    def iter_batches(
        self, columns: list[str], batch_rows: int = _STREAM_ROWS
    ) -> Iterator[pl.DataFrame]:
        """The chosen columns in input order, ``batch_rows`` rows at a time."""
        lf = self.scan(columns)
        try:
            yield from lf.collect_batches(chunk_size=batch_rows)
        except pl.exceptions.PolarsError as exc:
            raise located_error(self.path, self.format, exc) from None


def discover(paths: list[Path], input_dir: Path, override: Format | None = None) -> list[Path]:
    """Expand FILE arguments (files or folders) into the input files, in order.

    With no argument the configured ``input_dir`` is used. A folder contributes every
    supported file inside it (sorted, not recursive); a folder with none is an error.
    """
    if not paths:
        if not input_dir.is_dir():
            raise UsageError(
                f"No FILE given and the input folder '{input_dir}' does not exist.",
                hint="Pass a file, or set paths.input_dir.",
            )
        paths = [input_dir]
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and (override is not None or p.suffix.lower() in FORMATS)
            )
            if not inside:
                raise UsageError(
                    f"{path}: the folder holds no supported file.",
                    hint="Supported: .csv, .tsv, .json, .jsonl, .parquet.",
                )
            found.extend(inside)
        elif path.exists():
            format_of(path, override)
            found.append(path)
        else:
            raise InputFileError(f"{path}: no such file or folder.")
    return found


def open_input(path: Path, override: Format | None = None) -> InputFile:
    """Validate the file's shape (not yet its values) and return it as an ``InputFile``."""
    fmt = format_of(path, override)
    if path.exists() and not path.is_file():  # opening a pipe would wait for a writer
        raise InputFileError(f"{path}: not a regular file (a folder, pipe or device).")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4096)
    except PermissionError:
        raise InputFileError(f"{path}: permission denied.") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror}).") from None
    if size == 0 or not head.strip():
        raise InputFileError(f"{path}: the file is empty.")
    csv_rows: int | None = None
    if fmt in SEPARATORS:
        check_header(path, head, SEPARATORS[fmt])
        # polars fills short rows with empty strings and counts rows without parsing
        # quotes, so the row structure is checked (and counted) by the csv module.
        csv_rows = check_csv_rows(path, fmt)
    if fmt == "json" and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        raise InputFileError(
            f"{path}: a .json input must be an array of objects.",
            hint="Use .jsonl for one object per line.",
        )
    lf = scan_table(path, fmt)
    try:
        columns = tuple(lf.collect_schema().names())
        rows = _count_rows(lf, fmt)
    except pl.exceptions.PolarsError as exc:
        raise located_error(path, fmt, exc) from None
    if csv_rows is not None and rows != csv_rows:
        raise InputFileError(
            f"{path}: malformed {fmt.upper()}: {csv_rows:,} rows by the csv rules, "
            f"{rows:,} as read (a quote inside an unquoted field?).",
            hint='Quote fields that contain quotes, and double the quotes inside: "a ""b"" c".',
        )
    if rows == 0:
        what = "a header but no rows" if fmt in SEPARATORS else "no rows"
        raise InputFileError(f"{path}: the file has {what}.")
    return InputFile(path=path, format=fmt, columns=columns, rows=rows)


def _count_rows(lf: pl.LazyFrame, fmt: Format) -> int:
    """Rows as polars reads them.

    polars' fast row count maps the whole file into memory, which shows as the file's
    size in the process's RSS; CSV/TSV rows are counted by streaming one column instead
    (the fast count remains the fallback when that read fails, for its diagnosis).
    """
    if fmt in SEPARATORS:
        try:
            return sum(batch.height for batch in lf.select(pl.first()).collect_batches())
        except pl.exceptions.PolarsError:
            pass
    return int(lf.select(pl.len()).collect().item())


def require_columns(source: InputFile, needed: list[str], what: str) -> None:
    """Fail if any of ``needed`` is not a column, listing the columns that exist."""
    missing = [c for c in needed if c not in source.columns]
    if missing:
        raise InputFileError(
            f"{source.path}: no column {', '.join(repr(c) for c in missing)} ({what}).",
            hint="Columns in the file: " + ", ".join(source.columns) + ".",
        )


def scan_table(path: Path, fmt: Format) -> pl.LazyFrame:
    """A lazy frame of a table file as batchgrader reads one (CSV/TSV values as text)."""
    if fmt in SEPARATORS:
        lf = pl.scan_csv(
            path,
            separator=SEPARATORS[fmt],
            infer_schema=False,
            empty_string_is_null=False,
            missing_columns="raise",
            raise_if_empty=True,
        )
        return _true_header(lf, path, SEPARATORS[fmt])
    if fmt == "jsonl":
        if _starts_with_bom(path):  # polars' NDJSON reader rejects a BOM: read past it
            with path.open("rb") as handle:  # (read into memory: only BOM-marked files)
                handle.seek(len(codecs.BOM_UTF8))
                return pl.scan_ndjson(handle.read(), infer_schema_length=None)
        return pl.scan_ndjson(path, infer_schema_length=None)
    if fmt == "parquet":
        return pl.scan_parquet(path)
    try:
        return pl.read_json(path, infer_schema_length=None).lazy()
    except pl.exceptions.PolarsError as exc:
        raise located_error(path, fmt, exc) from None


def _true_header(lf: pl.LazyFrame, path: Path, separator: str) -> pl.LazyFrame:
    """``lf`` with the header's names as the csv rules read them.

    polars keeps the doubled quotes inside a quoted column name: the name ``say "hi"``
    comes back with each of its quotes doubled. The csv module reads the header the
    standard way, so the graded output keeps the input's column names.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            names = next(csv.reader(text, delimiter=separator), [])
        current = lf.collect_schema().names()
    except (OSError, UnicodeDecodeError, csv.Error, pl.exceptions.PolarsError):
        return lf  # the validation reports what is wrong with the file
    if names == current or len(names) != len(current) or len(set(names)) != len(names):
        return lf
    return lf.rename(dict(zip(current, names, strict=True)))


def _starts_with_bom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
