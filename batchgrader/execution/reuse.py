"""Answers already paid for: a row whose exact request was answered is not sent again.

The ledger keeps an index (``answers``) from a key of each successfully answered
request to the stored result that holds its answer (job, result file, row). The key is
a hash of the request line less its ``custom_id`` (the endpoint, model, every request
parameter and the rendered messages) and of where it was sent (provider and server).

When a job is created, each row's key is computed as its request line is built and
kept in the job's folder (``keys/``); rows whose key is in the index are left out of
the plan and their answers are copied into the job as chunks of mode ``reused`` (one
per source result file, done from the start), so the merge, retries, summaries and
``jobs clean`` treat them like any other result. A job's successful answers join the
index when its graded file is written. Only answers without an error are indexed (a row
whose answer was an error is sent again), and ``--force`` neither looks up nor skips.
``jobs clean`` forgets the answers of the job folders it removes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from array import array
from collections.abc import Iterable
from decimal import Decimal

import polars as pl

from batchgrader.data.atomic import atomic_path
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.results import RESULT_SCHEMA
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow
from batchgrader.ledger.store import Ledger, now_iso
from batchgrader.money.pricing import Price, Tier, Usage, cost
from batchgrader.planning.workload import RowBlock
from batchgrader.providers.base import custom_id

log = logging.getLogger(__name__)

#: Bytes of SHA-256 kept per key (a collision needs about 2**64 keys).
KEY_BYTES = 16
#: Keys looked up per query (SQLite's parameter limit is far above).
LOOKUP_BATCH = 500
#: The folder of a job's row keys, and the name prefix of its reused result files.
KEYS = "keys"
REUSED_PREFIX = "reused-"


def scope_of(provider: str, host: str) -> str:
    """Where requests went: the same request sent elsewhere is another request."""
    return f"{provider}|{host}"


def request_key(scope: str, line: str, cid: str) -> bytes:
    """The key of one request line (its custom_id left out)."""
    body = line.replace(json.dumps(cid), "", 1)  # the id's JSON string is at its slot
    return hashlib.sha256(f"{scope}\n{body}".encode()).digest()[:KEY_BYTES]


class Reuse:
    """Keys of a new job's rows, and the rows whose answers it can reuse.

    Passed to ``write_plan`` as its ``leave_out``: called with each block of rows as
    its request lines are built; returns the rows not to plan.
    """

    def __init__(
        self, ledger: Ledger, files: JobFiles, scope: str, width: int, *, lookup: bool
    ) -> None:
        self.ledger = ledger
        self.files = files
        self.scope = scope
        self.width = width
        self.lookup = lookup and bool(ledger.db.execute("SELECT 1 FROM answers LIMIT 1").fetchone())
        self._sources: list[tuple[str, str]] = []  # (job id, result file) of the hits
        self._source_index: dict[tuple[str, str], int] = {}
        self._exists: dict[tuple[str, str], bool] = {}
        # One entry per reused row, in input order: flat arrays keep a big superset small.
        self.rows = array("q")
        self.source_rows = array("q")
        self.source_files = array("l")
        self.tokens = array("q")
        self._parts = 0

    def __call__(self, block: RowBlock) -> set[int]:
        assert block.lines is not None
        keys = [
            request_key(self.scope, line, custom_id(row, self.width))
            for row, line in zip(block.rows, block.lines, strict=True)
        ]
        self._keep(block.rows, keys)
        if not self.lookup or not keys:
            return set()
        found = self._find(keys)
        leave: set[int] = set()
        for row, key, tokens in zip(block.rows, keys, block.tokens, strict=True):
            hit = found.get(key)
            if hit is None or not self._available(hit[0], hit[1]):
                continue
            self.rows.append(row)
            self.source_rows.append(hit[2])
            self.source_files.append(self._source(hit[0], hit[1]))
            self.tokens.append(tokens)
            leave.add(row)
        return leave

    def _keep(self, rows: list[int], keys: list[bytes]) -> None:
        folder = self.files.folder / KEYS
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"part-{self._parts:05d}.parquet"
        self._parts += 1
        frame = pl.DataFrame({"row": rows, "key": keys}, schema={"row": pl.Int64, "key": pl.Binary})
        frame.write_parquet(path)
        os.chmod(path, 0o600)

    def _find(self, keys: list[bytes]) -> dict[bytes, tuple[str, str, int]]:
        found: dict[bytes, tuple[str, str, int]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), LOOKUP_BATCH):
            part = unique[start : start + LOOKUP_BATCH]
            rows = self.ledger.db.execute(
                "SELECT key, job_id, result_file, row FROM answers"
                f" WHERE key IN ({', '.join('?' * len(part))})",
                part,
            ).fetchall()
            for key, job_id, result_file, row in rows:
                found[bytes(key)] = (job_id, result_file, int(row))
        return found

    def _available(self, job_id: str, result_file: str) -> bool:
        known = self._exists.get((job_id, result_file))
        if known is None:
            path = self.files.sibling(job_id).results / result_file
            known = self._exists[(job_id, result_file)] = path.is_file()
        return known

    def _source(self, job_id: str, result_file: str) -> int:
        index = self._source_index.get((job_id, result_file))
        if index is None:
            index = self._source_index[(job_id, result_file)] = len(self._sources)
            self._sources.append((job_id, result_file))
        return index

    def chunks(self, job_id: str, first_idx: int) -> list[ChunkRow]:
        """Copy the reused answers into the job; one done chunk per source result file."""
        if not self.rows:
            return []
        frame = pl.DataFrame(
            {
                "row": self.rows,
                "source_row": self.source_rows,
                "source": self.source_files,
                "tokens": self.tokens,
            },
            schema=dict.fromkeys(("row", "source_row", "source", "tokens"), pl.Int64),
        )
        self.files.results.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = now_iso()
        chunks: list[ChunkRow] = []
        for (source,), wanted in frame.group_by(["source"], maintain_order=True):
            job, result_file = self._sources[int(source)]
            path = self.files.sibling(job).results / result_file
            answers = (
                pl.scan_parquet(path)
                .join(
                    wanted.lazy().select("row", "source_row"),
                    left_on="row",
                    right_on="source_row",
                )
                .with_columns(pl.col("row_right").alias("row"))
                .select(list(RESULT_SCHEMA))
                .sort("row")
                .collect()
            )
            idx = first_idx + len(chunks)
            name = f"{REUSED_PREFIX}{idx:04d}.parquet"
            with atomic_path(self.files.results / name) as tmp:
                answers.write_parquet(tmp)
                os.chmod(tmp, 0o600)
            chunks.append(
                ChunkRow(
                    job_id=job_id,
                    idx=idx,
                    first_row=int(wanted["row"].min()),  # type: ignore[arg-type]
                    last_row=int(wanted["row"].max()),  # type: ignore[arg-type]
                    requests=answers.height,
                    tokens=int(wanted["tokens"].sum()),
                    bytes=0,
                    request_file=f"{REUSED_PREFIX}{idx:04d} (answers of job {job})",
                    status=ChunkStatus.DONE,
                    prepared_ref=None,
                    batch_id=None,
                    attempt=0,
                    intent_at=None,
                    error=None,
                    result_file=name,
                    updated_at=stamp,
                    mode=ChunkMode.REUSED,
                )
            )
        return chunks

    def sources(self) -> list[str]:
        """The jobs whose answers were reused."""
        return list(dict.fromkeys(job for job, _ in self._sources))


def remember(ledger: Ledger, files: JobFiles, job: JobRow, chunks: Iterable[ChunkRow]) -> int:
    """Index the job's successful answers not indexed yet; returns how many were added."""
    keys_folder = files.folder / KEYS
    if not keys_folder.is_dir():
        return 0  # a job made before the index existed
    keys = pl.scan_parquet(keys_folder / "*.parquet")
    added = 0
    for chunk in chunks:
        if not chunk.result_file:
            continue
        path = files.results / chunk.result_file
        indexed = ledger.db.execute(
            "SELECT 1 FROM answers WHERE job_id = ? AND result_file = ? LIMIT 1",
            (job.id, chunk.result_file),
        ).fetchone()
        if indexed or not path.is_file():
            continue
        answered = (
            pl.scan_parquet(path)
            .filter(pl.col("error_code").is_null() & pl.col("response").is_not_null())
            .select("row")
            .join(keys, on="row")
            .collect()
        )
        with ledger.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO answers (key, job_id, result_file, row)"
                " VALUES (?, ?, ?, ?)",
                ((key, job.id, chunk.result_file, row) for row, key in answered.iter_rows()),
            )
        added += answered.height
    return added


def forget(ledger: Ledger, job_id: str) -> None:
    """Drop a job's answers from the index (its results are being removed)."""
    ledger.db.execute("DELETE FROM answers WHERE job_id = ?", (job_id,))


def reused(
    files: JobFiles, chunks: Iterable[ChunkRow], price: Price | None
) -> tuple[int, Decimal | None]:
    """Rows whose answers were reused, and what those answers cost when they were paid."""
    paths = [
        files.results / c.result_file
        for c in chunks
        if c.mode is ChunkMode.REUSED and c.result_file
    ]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return 0, None
    totals = (
        pl.scan_parquet(paths)
        .select(
            pl.len().alias("rows"),
            *(pl.col(name).sum() for name in list(RESULT_SCHEMA)[6:]),
        )
        .collect()
        .row(0, named=True)
    )
    usage = Usage(
        input_tokens=int(totals["input_tokens"] or 0),
        cached_input_tokens=int(totals["cached_tokens"] or 0),
        cache_write_tokens=int(totals["cache_write_tokens"] or 0),
        output_tokens=int(totals["output_tokens"] or 0),
        reasoning_tokens=int(totals["reasoning_tokens"] or 0),
    )
    saved = cost(price, usage, tier=Tier.BATCH) if price is not None else None
    return int(totals["rows"]), saved
