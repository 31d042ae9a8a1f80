"""The file formats batchgrader reads and writes, named by extension or ``--format``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from batchgrader.errors import UsageError

Format = Literal["csv", "tsv", "json", "jsonl", "parquet"]
FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
#: The field separator of each delimited format.
SEPARATORS = {"csv": ",", "tsv": "\t"}


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


def extension(fmt: Format) -> str:
    """The usual extension of a format."""
    return next(ext for ext, f in FORMATS.items() if f == fmt)
