"""Input and output files: CSV, TSV, JSON (array of objects), JSONL and Parquet.

Inputs are read lazily with polars and streamed in batches, so a big file never needs
several copies in memory; CSV and TSV columns are read as text, so every value comes
back out exactly as it went in. Validation happens before any work: the problems polars
reports without a location (bad bytes, ragged rows, a broken JSON line) are located by a
second, plain-Python look at the file, on the failure path only. Outputs are written
atomically (temporary file in the same folder, then rename). Inputs are never modified.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import polars as pl

from batchgrader.errors import InputFileError, UsageError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Format = Literal["csv", "tsv", "json", "jsonl", "parquet"]
FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
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
            raise _located_error(self.path, self.format, exc) from None


def parse_format(name: str | None) -> Format | None:
    """A ``--format`` value, or None when not given."""
    if name is None:
        return None
    key = "." + name.lower().lstrip(".")
    if key not in FORMATS:
        raise UsageError(
            f"Unknown format '{name}'.",
            hint="Use one of: " + ", ".join(sorted(set(FORMATS.values()))) + ".",
        )
    return FORMATS[key]


def format_of(path: Path, override: Format | None = None) -> Format:
    """The format of ``path``: the override, else its extension."""
    if override is not None:
        return override
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}'.",
            hint="Supported: .csv, .tsv, .json, .jsonl, .parquet (or pass --format).",
        )
    return fmt


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
    if fmt in _SEPARATORS:
        _check_header(path, head, _SEPARATORS[fmt])
        # polars fills short rows with empty strings and counts rows without parsing
        # quotes, so the row structure is checked (and counted) by the csv module.
        csv_rows = _check_csv_rows(path, fmt)
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
        raise _located_error(path, fmt, exc) from None
    if csv_rows is not None and rows != csv_rows:
        raise InputFileError(
            f"{path}: malformed {fmt.upper()}: {csv_rows:,} rows by the csv rules, "
            f"{rows:,} as read (a quote inside an unquoted field?).",
            hint='Quote fields that contain quotes, and double the quotes inside: "a ""b"" c".',
        )
    if rows == 0:
        what = "a header but no rows" if fmt in _SEPARATORS else "no rows"
        raise InputFileError(f"{path}: the file has {what}.")
    return InputFile(path=path, format=fmt, columns=columns, rows=rows)


def _count_rows(lf: pl.LazyFrame, fmt: Format) -> int:
    """Rows as polars reads them.

    polars' fast row count maps the whole file into memory, which shows as the file's
    size in the process's RSS; CSV/TSV rows are counted by streaming one column instead
    (the fast count remains the fallback when that read fails, for its diagnosis).
    """
    if fmt in _SEPARATORS:
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
    if fmt in _SEPARATORS:
        lf = pl.scan_csv(
            path,
            separator=_SEPARATORS[fmt],
            infer_schema=False,
            empty_string_is_null=False,
            missing_columns="raise",
            raise_if_empty=True,
        )
        return _true_header(lf, path, _SEPARATORS[fmt])
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
        raise _located_error(path, fmt, exc) from None


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


def _check_header(path: Path, head: bytes, separator: str) -> None:
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    names = next(csv.reader([first], delimiter=separator), [])
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputFileError(f"{path}: the column name '{name}' appears twice in the header.")
        seen.add(name)


def _located_error(path: Path, fmt: Format, exc: Exception) -> InputFileError:
    """Turn a polars error into one message that names the line where possible."""
    where = _locate_problem(path, fmt)
    if where is not None:
        return InputFileError(f"{path}: {where}.")
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputFileError(f"{path}: cannot be read as {fmt.upper()}: {detail}.")


def _locate_problem(path: Path, fmt: Format) -> str | None:
    """Find the first bad line with the standard library (failure path only)."""
    if fmt == "parquet":
        return None
    bad_bytes = _utf8_problem(path)
    if bad_bytes is not None:
        return bad_bytes
    if fmt == "jsonl":
        with path.open(encoding="utf-8-sig") as text:
            for number, raw in enumerate(text, start=1):
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError as err:
                    return f"line {number} is not valid JSON ({err.msg})"
                if not isinstance(value, dict):
                    return f"line {number} is not a JSON object"
        return None
    if fmt == "json":
        try:
            value = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as err:
            return f"invalid JSON at line {err.lineno}, column {err.colno} ({err.msg})"
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return "a .json input must be an array of objects"
        return None
    problem, _ = _csv_shape(path, fmt)
    return problem


def _utf8_problem(path: Path) -> str | None:
    """Where the file stops being UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                line += block.count(b"\n", 0, err.start)
                return f"line {line} is not valid UTF-8 (byte {err.object[err.start]:#04x})"
            line += block.count(b"\n")
    return None


def _check_csv_rows(path: Path, fmt: Format) -> int:
    """The data rows of a CSV/TSV file; fails at the first ragged or malformed row."""
    problem, rows = _csv_shape(path, fmt)
    if problem is not None:
        raise InputFileError(f"{path}: {problem}.")
    return rows


def _csv_shape(path: Path, fmt: Format) -> tuple[str | None, int]:
    """The first structural problem of a CSV/TSV file (or None) and its data rows.

    A blank line is a row of empty fields (as polars reads it); any other row must
    have as many fields as the header.
    """
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # one field may hold a whole essay
    rows = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text, delimiter=_SEPARATORS[fmt], strict=True)
            start = 1  # the line the record being read starts on
            try:
                width = len(next(reader, []))
                start = reader.line_num + 1
                for record in reader:
                    if record and len(record) != width:
                        return (
                            f"row {rows + 1} (ending on line {reader.line_num}) has "
                            f"{len(record)} field{'s' if len(record) != 1 else ''}, "
                            f"the header has {width}",
                            rows,
                        )
                    rows += 1
                    start = reader.line_num + 1
            except csv.Error as err:
                what = f"row {rows + 1}, starting on line {start}" if start > 1 else "the header"
                if "end of data" in str(err):  # end of file inside a quoted field
                    detail = "a quoted field is never closed (it runs to the end of the file)"
                else:
                    detail = str(err)
                return f"malformed {fmt.upper()} in {what}: {detail}", rows
    except UnicodeDecodeError:
        return _utf8_problem(path), rows
    finally:
        csv.field_size_limit(limit)
    return None, rows


# --- writing ---------------------------------------------------------------------------


def write_frame(df: pl.DataFrame, path: Path, fmt: Format) -> None:
    """Write ``df`` to ``path`` atomically in ``fmt`` (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt in _SEPARATORS:
            df.write_csv(tmp, separator=_SEPARATORS[fmt])
        elif fmt == "jsonl":
            df.write_ndjson(tmp)
        elif fmt == "json":
            df.write_json(tmp)
        else:
            df.write_parquet(tmp)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds.

    The file is created with the mode any new file gets (0666 less the umask), not
    ``mkstemp``'s 0600: the graded file, parts and exports are the user's files. It is
    locked while the block runs, so one left behind by a killed process (unlocked and
    over a minute old) is removed the next time ``path`` is written.
    """
    _sweep_temporary_files(path)
    tmp, lock = _new_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(lock)


#: A temporary file younger than this is never swept: its writer may not hold the lock yet.
STALE_AFTER_SECONDS = 60.0


def _new_file_beside(path: Path) -> tuple[Path, int]:
    """A new, empty temporary file beside ``path``, and a descriptor that locks it."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # "being written": held until the block ends
        return tmp, fd


def _sweep_temporary_files(path: Path) -> None:
    """Remove the temporary files of ``path`` that no live process is writing."""
    if fcntl is None:  # no advisory locks (Windows): leave them
        return
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime < STALE_AFTER_SECONDS:
                continue
            fd = os.open(stale, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its writer is alive
            continue
        else:
            log.info("Removing %s, left by an interrupted write.", stale)
            stale.unlink(missing_ok=True)
        finally:
            os.close(fd)


#: Formats whose files can be written a batch of rows at a time (``append_rows``).
APPENDABLE: frozenset[Format] = frozenset({"csv", "tsv", "jsonl"})


def append_rows(df: pl.DataFrame, handle: IO[bytes], fmt: Format, *, header: bool) -> None:
    """Append ``df`` to an open CSV, TSV or JSONL file (CSV/TSV header row when ``header``)."""
    if fmt in _SEPARATORS:
        df.write_csv(handle, separator=_SEPARATORS[fmt], include_header=header)
    elif fmt == "jsonl":
        df.write_ndjson(handle)
    else:
        raise ValueError(f"a {fmt} file cannot be written in pieces")


def sink_rows(rows: pl.LazyFrame, path: Path, fmt: Format) -> None:
    """Write ``rows`` to ``path`` as ``fmt``, streamed (a JSON array is built whole);
    not atomic by itself."""
    if fmt in _SEPARATORS:
        rows.sink_csv(path, separator=_SEPARATORS[fmt])
    elif fmt == "jsonl":
        rows.sink_ndjson(path)
    elif fmt == "parquet":
        rows.sink_parquet(path)
    else:
        rows.collect().write_json(path)
