"""Writing table files: streamed from a lazy frame, or appended a batch at a time."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import polars as pl

from batchgrader.data.formats import SEPARATORS, Format

#: Formats whose files can be written a batch of rows at a time (``append_rows``).
APPENDABLE: frozenset[Format] = frozenset({"csv", "tsv", "jsonl"})


def append_rows(df: pl.DataFrame, handle: IO[bytes], fmt: Format, *, header: bool) -> None:
    """Append ``df`` to an open CSV, TSV or JSONL file (CSV/TSV header row when ``header``)."""
    if fmt in SEPARATORS:
        df.write_csv(handle, separator=SEPARATORS[fmt], include_header=header)
    elif fmt == "jsonl":
        df.write_ndjson(handle)
    else:
        raise ValueError(f"a {fmt} file cannot be written in pieces")


def sink_rows(rows: pl.LazyFrame, path: Path, fmt: Format) -> None:
    """Write ``rows`` to ``path`` as ``fmt``, streamed (a JSON array is built whole);
    not atomic by itself."""
    if fmt in SEPARATORS:
        rows.sink_csv(path, separator=SEPARATORS[fmt])
    elif fmt == "jsonl":
        rows.sink_ndjson(path)
    elif fmt == "parquet":
        rows.sink_parquet(path)
    else:
        rows.collect().write_json(path)
