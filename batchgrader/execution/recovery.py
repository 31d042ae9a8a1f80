"""When the input changed under a running job: results against the job's own rows.

Real batches run for hours; if the input file was rewritten meanwhile (rows shuffled,
inserted or deleted), merging by position would give rows another row's score. The
paid results are instead written against the job's own copy of the rows it sent: row
number (1-based), the graded text, and the result columns.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batchgrader.data.atomic import atomic_path
from batchgrader.data.formats import Format
from batchgrader.data.reading import open_input
from batchgrader.data.writing import sink_rows
from batchgrader.errors import BatchgraderError
from batchgrader.execution.jobs import ROWS_FILE
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.merge import aligned_results, graded_rows
from batchgrader.execution.output import Target, recovered_path
from batchgrader.execution.summary import RowTally
from batchgrader.ledger.records import ChunkRow, JobRow
from batchgrader.planning.spec import RequestSpec


def what_changed(path: Path, fmt: Format, job: JobRow) -> str:
    """How the input now differs from the rows the job sent, in a few words."""
    if not path.exists():
        return "it is gone"
    try:
        rows = open_input(path, fmt).rows
    except BatchgraderError as exc:
        return f"it can no longer be read: {exc.message}"
    if rows != job.rows:
        return f"it had {job.rows:,} rows and has {rows:,} now"
    return f"it has {rows:,} rows as before, in another order or with other contents"


def write_recovered(
    files: JobFiles, job: JobRow, spec: RequestSpec, chunks: list[ChunkRow], target: Target
) -> tuple[Path, RowTally]:
    """Write the job's rows and results beside ``target``; returns the path and tally."""
    path = recovered_path(target.path)
    path.parent.mkdir(parents=True, exist_ok=True)  # a detached job wrote nothing there yet
    rows = pl.scan_parquet(files.folder / ROWS_FILE).select(
        (pl.col("row") + 1).alias("row"), pl.col("text").alias(spec.text_column)
    )
    with aligned_results(files, job, chunks) as results:
        merged = graded_rows(
            rows, ["row", spec.text_column], spec.text_column, results, chunks, spec.prompt
        )
        with atomic_path(path) as tmp:
            sink_rows(merged, tmp, target.format)
        tally = RowTally.of(results)
    return path, tally
