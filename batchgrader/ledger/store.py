"""The local ledger: jobs, chunks, provider batches, usage events (SQLite, WAL).

Every fact that money depends on is written here before the next step relies on it:
the uploaded file id right after upload, an intent before ``create``, the batch id
right after ``create`` returns and before the first poll. Several batchgrader processes
may share one ledger (WAL mode, a busy timeout, short transactions).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from batchgrader.ledger.migrations import migrate


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class JobRow:
    id: str
    fingerprint: str
    input_path: str
    input_hash: str
    model: str
    endpoint: str
    request_settings: str
    output_path: str | None
    status: str  # running | done | failed | cancelled
    rows: int
    created_at: str
    updated_at: str


@dataclass
class ChunkRow:
    job_id: str
    idx: int
    first_row: int
    last_row: int
    requests: int
    tokens: int
    bytes: int
    request_file: str
    # pending | uploaded | creating | submitted | done | failed | halted
    status: str
    input_file_id: str | None
    batch_id: str | None
    attempt: int
    intent_at: int | None
    error: str | None
    result_file: str | None
    updated_at: str


@dataclass
class UsageEvent:
    timestamp: str
    batch_id: str
    job_id: str | None
    source_file: str | None
    api_key_prefix: str | None
    base_url_host: str | None
    model: str
    endpoint: str | None
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Decimal | None
    committed: bool
    requests_completed: int
    requests_failed: int


def _row(cls: type[Any], row: sqlite3.Row) -> Any:
    return cls(**{f.name: row[f.name] for f in fields(cls)})


class Ledger:
    """Access to one ledger database."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Open (creating with user-only permissions) and migrate the ledger."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            path.touch(mode=0o600)
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        # WAL with synchronous=NORMAL survives any process crash; after a power loss the
        # last commits may be missing, and a batch id lost so is found again by metadata.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
        for suffix in ("", "-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- jobs -----------------------------------------------------------------------

    def add_job(self, job: JobRow, chunks: list[ChunkRow]) -> None:
        with self.transaction() as db:
            _insert(db, "jobs", job)
            for chunk in chunks:
                _insert(db, "chunks", chunk)

    def job(self, job_id: str) -> JobRow | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(JobRow, row) if row else None

    def job_by_fingerprint(self, fingerprint: str) -> JobRow | None:
        row = self.db.execute(
            "SELECT * FROM jobs WHERE fingerprint = ? AND status != 'superseded' "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (fingerprint,),
        ).fetchone()
        return _row(JobRow, row) if row else None

    def jobs(self, *, include_finished: bool = True) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        if not include_finished:
            query += " WHERE status = 'running'"
        rows = self.db.execute(query + " ORDER BY created_at DESC, rowid DESC").fetchall()
        return [_row(JobRow, r) for r in rows]

    def set_job(self, job_id: str, **values: Any) -> None:
        _update(self.db, "jobs", "id = ?", (job_id,), values)

    # --- chunks ---------------------------------------------------------------------

    def chunks(self, job_id: str) -> list[ChunkRow]:
        rows = self.db.execute(
            "SELECT * FROM chunks WHERE job_id = ? ORDER BY idx", (job_id,)
        ).fetchall()
        return [_row(ChunkRow, r) for r in rows]

    def set_chunk(self, job_id: str, idx: int, **values: Any) -> None:
        _update(self.db, "chunks", "job_id = ? AND idx = ?", (job_id, idx), values)

    def add_chunks(self, chunks: list[ChunkRow]) -> None:
        with self.transaction() as db:
            for chunk in chunks:
                _insert(db, "chunks", chunk)

    # --- batches --------------------------------------------------------------------

    def record_batch(
        self,
        batch_id: str,
        job_id: str,
        chunk_idx: int,
        status: str,
        *,
        input_file_id: str | None = None,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        total: int = 0,
        completed: int = 0,
        failed: int = 0,
    ) -> None:
        stamp = now_iso()
        self.db.execute(
            "INSERT INTO batches (id, job_id, chunk_idx, status, input_file_id, output_file_id,"
            " error_file_id, total, completed, failed, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
            " output_file_id = excluded.output_file_id, error_file_id = excluded.error_file_id,"
            " total = excluded.total, completed = excluded.completed, failed = excluded.failed,"
            " updated_at = excluded.updated_at",
            (
                batch_id,
                job_id,
                chunk_idx,
                status,
                input_file_id,
                output_file_id,
                error_file_id,
                total,
                completed,
                failed,
                stamp,
                stamp,
            ),
        )

    def batches(self, job_id: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM batches WHERE job_id = ? ORDER BY created_at, rowid", (job_id,)
        ).fetchall()

    # --- usage ----------------------------------------------------------------------

    def commit_usage(self, event: UsageEvent) -> None:
        """Record a submitted batch's estimated spend (committed, not yet actual)."""
        values = _usage_values(event, committed=True)
        self.db.execute(
            f"INSERT OR IGNORE INTO usage_events ({', '.join(values)})"
            f" VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )

    def record_usage(self, event: UsageEvent) -> bool:
        """Record a collected batch's actual usage, once per batch id.

        Replaces the committed estimate; returns False when the batch's actual usage
        was already recorded (a resume or a second collection never counts twice).
        """
        values = _usage_values(event, committed=False)
        with self.transaction() as db:
            row = db.execute(
                "SELECT committed FROM usage_events WHERE batch_id = ?", (event.batch_id,)
            ).fetchone()
            if row is not None and not row["committed"]:
                return False
            db.execute("DELETE FROM usage_events WHERE batch_id = ?", (event.batch_id,))
            db.execute(
                f"INSERT INTO usage_events ({', '.join(values)})"
                f" VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
        return True

    def release_usage(self, batch_id: str) -> None:
        """Drop a committed estimate whose batch will never run (failed validation)."""
        self.db.execute(
            "DELETE FROM usage_events WHERE batch_id = ? AND committed = 1", (batch_id,)
        )

    def usage_events(
        self, since: str | None = None, until: str | None = None, job_id: str | None = None
    ) -> list[UsageEvent]:
        query, args = "SELECT * FROM usage_events WHERE 1 = 1", []
        if job_id is not None:
            query += " AND job_id = ?"
            args.append(job_id)
        if since is not None:
            query += " AND timestamp >= ?"
            args.append(since)
        if until is not None:
            query += " AND timestamp < ?"
            args.append(until)
        rows = self.db.execute(query + " ORDER BY timestamp, id", args).fetchall()
        events = []
        for r in rows:
            event = _row(UsageEvent, r)
            event.cost = Decimal(r["cost"]) if r["cost"] is not None else None
            event.committed = bool(r["committed"])
            events.append(event)
        return events

    # --- learned limits -------------------------------------------------------------

    def learned_limit(self, model: str) -> int | None:
        row = self.db.execute(
            "SELECT enqueued_tokens FROM learned_limits WHERE model = ?", (model,)
        ).fetchone()
        return int(row[0]) if row else None

    def learn_limit(self, model: str, enqueued_tokens: int) -> None:
        self.db.execute(
            "INSERT INTO learned_limits (model, enqueued_tokens, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (model) DO UPDATE SET enqueued_tokens = excluded.enqueued_tokens,"
            " updated_at = excluded.updated_at",
            (model, enqueued_tokens, now_iso()),
        )


def _usage_values(event: UsageEvent, *, committed: bool) -> dict[str, Any]:
    values = {f.name: getattr(event, f.name) for f in fields(UsageEvent)}
    values["cost"] = str(event.cost) if event.cost is not None else None
    values["committed"] = int(committed)
    return values


def _insert(db: sqlite3.Connection, table: str, row: Any) -> None:
    values = {f.name: getattr(row, f.name) for f in fields(row)}
    db.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def _update(
    db: sqlite3.Connection, table: str, where: str, key: tuple[Any, ...], values: dict[str, Any]
) -> None:
    values = {**values, "updated_at": now_iso()}
    assignments = ", ".join(f"{name} = ?" for name in values)
    db.execute(f"UPDATE {table} SET {assignments} WHERE {where}", (*values.values(), *key))
