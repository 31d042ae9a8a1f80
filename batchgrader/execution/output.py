"""Where a graded file goes, checked before anything is paid for.

A graded file never replaces a file it did not write: an existing default name gets a
timestamped sibling, an existing ``--output`` needs ``--overwrite``. A job's own graded
file (the one the ledger says it wrote last) is updated in place by its retries.
Everything that can be checked before a batch is created is: the folder is a writable
folder with room, the extension is a format batchgrader writes, nested columns can go
to the chosen format.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from batchgrader.data.formats import FORMATS, Format, extension
from batchgrader.errors import OutputExistsError, UsageError
from batchgrader.ledger.records import JobRow
from batchgrader.ledger.store import Ledger
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: Free space asked of the output folder, as a multiple of the input's size.
ROOM_FACTOR = 2


@dataclass(frozen=True)
class Target:
    """A graded file's path and format."""

    path: Path
    format: Format
    #: True when it replaces the job's own earlier graded file.
    own: bool = False


def own_output(ledger: Ledger, job: JobRow) -> Path | None:
    """The job's graded file, if it exists and no later job wrote over that path."""
    if job.output_path is None:
        return None
    path = Path(job.output_path)
    if not path.exists():
        return None
    writers = ledger.jobs_by_output(str(path))
    return path if writers and writers[0].id == job.id else None


def resolve_target(
    source: Path,
    settings: Settings,
    *,
    explicit: Path | None,
    fmt: Format | None,
    overwrite: bool,
    own: Path | None = None,
) -> Target:
    """The graded file's path (absolute) and format; never someone else's file."""
    if explicit is not None:
        path = explicit.expanduser().absolute()
        out_format = fmt or _format_of_output(path)
        if path.exists() and not overwrite and path != own:
            raise OutputExistsError(
                f"{path} exists.", hint="Pass --overwrite, or choose another --output."
            )
        return Target(path, out_format, own=path == own)
    out_format = fmt or _format_of_output(source)
    if own is not None and (fmt is None or own.suffix == extension(out_format)):
        return Target(own, out_format, own=True)
    ext = source.suffix if fmt is None else extension(out_format)
    path = (settings.paths.output_dir / f"{source.stem}.graded{ext}").expanduser().absolute()
    if path.exists() and not overwrite:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = fresh = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
        n = 1
        while fresh.exists():  # two runs in the same second: never replace the first
            n += 1
            fresh = base.with_name(f"{base.stem}-{n}{base.suffix}")
        log.warning("%s exists: writing %s instead (--overwrite to replace it).", path, fresh)
        path = fresh
    return Target(path, out_format)


def recovered_path(target: Path) -> Path:
    """Where a job's results go when its input changed: beside the target, never over it."""
    path = target.with_name(f"{target.stem}.recovered{target.suffix}")
    n = 1
    while path.exists():
        n += 1
        path = target.with_name(f"{target.stem}.recovered-{n}{target.suffix}")
    return path


def _format_of_output(path: Path) -> Format:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: batchgrader cannot write '{path.suffix or '(no extension)'}' files.",
            hint="Use .csv, .tsv, .json, .jsonl or .parquet (or --output-format).",
        )
    return fmt


def check_writable(target: Target, input_size: int) -> None:
    """The target's folder is (or can be) a writable folder with room for the output."""
    folder = target.path.parent
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise UsageError(f"Output folder {probe} is a link to nothing.")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(
            f"Cannot write {target.path}: {probe} is a file, not a folder.",
            hint="Choose another --output or paths.output_dir.",
        )
    if target.path.is_dir():
        raise UsageError(f"Cannot write {target.path}: it is a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(
            f"Cannot write into {probe}: permission denied.",
            hint="Choose another --output or paths.output_dir.",
        )
    free = shutil.disk_usage(probe).free
    needed = ROOM_FACTOR * input_size
    if free < needed:
        raise UsageError(
            f"Only {free:,} bytes are free in {probe}; the graded file needs about {needed:,}.",
            hint="Free some space, or choose another --output.",
        )


def check_nested(schema: pl.Schema, target: Target) -> None:
    """CSV and TSV hold no nested values: say so before paying, not after."""
    if target.format not in ("csv", "tsv"):
        return
    nested = [name for name, dtype in schema.items() if dtype.is_nested()]
    if nested:
        raise UsageError(
            f"The input has nested columns ({', '.join(nested)}), which a "
            f"{target.format.upper()} file cannot hold.",
            hint="Write the graded file as .jsonl, .json or .parquet (--output or "
            "--output-format).",
        )
