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
from batchgrader.data.writing import sink_rows
from batchgrader.execution.jobs import ROWS_FILE
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.merge import aligned_results, graded_rows
from batchgrader.execution.output import Target, recovered_path
from batchgrader.ledger.records import ChunkRow, JobRow
from batchgrader.planning.spec import RequestSpec


def write_recovered(
    files: JobFiles, job: JobRow, spec: RequestSpec, chunks: list[ChunkRow], target: Target
) -> Path:
    """Write the job's rows and results beside ``target``; returns the path written."""
    path = recovered_path(target.path)
    rows = pl.scan_parquet(files.folder / ROWS_FILE).select(
        (pl.col("row") + 1).alias("row"), pl.col("text").alias(spec.text_column)
    )
    with aligned_results(files, job, chunks) as results:
        merged = graded_rows(
            rows, ["row", spec.text_column], spec.text_column, results, chunks, spec.prompt
        )
        with atomic_path(path) as tmp:
            sink_rows(merged, tmp, target.format)
    return path
