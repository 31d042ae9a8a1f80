"""Where an input file is malformed: the first bad line, found the plain way.

polars reports some problems without a location (bad bytes, ragged rows, a broken
JSON line); these functions find the line with the standard library, on the failure
path only, and the CSV/TSV row structure check (polars fills short rows silently).
"""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path

from batchgrader.data.formats import SEPARATORS, Format
from batchgrader.errors import InputFileError


def check_header(path: Path, head: bytes, separator: str) -> None:
    line = head.split(b"\n", 1)[0]
    if b"\r" in line.rstrip(b"\r"):
        raise InputFileError(
            f"{path}: its lines end with a carriage return alone (\\r, as in old Mac "
            "files); batchgrader reads lines ending in \\n or \\r\\n.",
            hint=f"Convert the line ends, e.g.: tr '\\r' '\\n' < {path.name} > fixed{path.suffix}",
        )
    first = line.decode("utf-8", errors="replace").lstrip("\ufeff")
    names = next(csv.reader([first], delimiter=separator), [])
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputFileError(f"{path}: the column name '{name}' appears twice in the header.")
        seen.add(name)


def located_error(path: Path, fmt: Format, exc: Exception) -> InputFileError:
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


def check_csv_rows(path: Path, fmt: Format) -> int:
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
            reader = csv.reader(text, delimiter=SEPARATORS[fmt], strict=True)
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
