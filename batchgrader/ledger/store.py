"""The local ledger: jobs, chunks, provider batches, usage events (SQLite, WAL).

Every fact that money depends on is written here before the next step relies on it:
the prepared input right after it is sent, an intent before ``create``, the batch id
right after ``create`` returns and before the first poll. Several batchgrader processes
may share one ledger (WAL mode, a busy timeout, short transactions); a budget check and
the commitment it allows are one transaction, so two runs cannot pass a budget together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from batchgrader.ledger.connection import connect
from batchgrader.ledger.records import (
    ChunkMode,
    ChunkRow,
    ChunkStatus,
    JobRow,
    JobStatus,
    UsageEvent,
)

__all__ = ["ChunkRow", "JobRow", "Ledger", "UsageEvent", "now_iso"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _job(row: sqlite3.Row) -> JobRow:
    values = {f.name: row[f.name] for f in fields(JobRow)}
    values["status"] = JobStatus(values["status"])
    return JobRow(**values)


def _chunk(row: sqlite3.Row) -> ChunkRow:
    values = {f.name: row[f.name] for f in fields(ChunkRow)}
    values["status"] = ChunkStatus(values["status"])
    values["mode"] = ChunkMode(values["mode"])
    return ChunkRow(**values)


def _event(row: sqlite3.Row) -> UsageEvent:
    values = {f.name: row[f.name] for f in fields(UsageEvent)}
    values["cost"] = Decimal(values["cost"]) if values["cost"] is not None else None
    values["committed"] = bool(values["committed"])
    return UsageEvent(**values)


class Ledger:
    """Access to one ledger database (a context manager: closed on exit)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Open (creating with user-only permissions) and migrate the ledger.

        A ledger that cannot be used (a folder, not a database, read-only, no room) is a
        ``LedgerError`` naming the file: one line, exit 2, nothing submitted.
        """
        return cls(connect(path), path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        return _job(row) if row else None

    def job_by_fingerprint(self, fingerprint: str) -> JobRow | None:
        row = self.db.execute(
            "SELECT * FROM jobs WHERE fingerprint = ? AND status != 'superseded'"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (fingerprint,),
        ).fetchone()
        return _job(row) if row else None

    def jobs_by_output(self, output_path: str) -> list[JobRow]:
        """Jobs that wrote the graded file ``output_path`` (newest first)."""
        rows = self.db.execute(
            "SELECT * FROM jobs WHERE output_path = ? ORDER BY created_at DESC, rowid DESC",
            (output_path,),
        ).fetchall()
        return [_job(r) for r in rows]

    def jobs(self, *, include_finished: bool = True) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        if not include_finished:
            query += " WHERE status = 'running'"
        rows = self.db.execute(query + " ORDER BY created_at DESC, rowid DESC").fetchall()
        return [_job(r) for r in rows]

    def set_job(self, job_id: str, **values: Any) -> None:
        _update(self.db, "jobs", "id = ?", (job_id,), values)

    def remove_job(self, job_id: str) -> None:
        """Forget a job that never sent anything (a refused run)."""
        with self.transaction() as db:
            db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    # --- chunks ---------------------------------------------------------------------

    def chunks(self, job_id: str) -> list[ChunkRow]:
        rows = self.db.execute(
            "SELECT * FROM chunks WHERE job_id = ? ORDER BY idx", (job_id,)
        ).fetchall()
        return [_chunk(r) for r in rows]

    def chunk(self, job_id: str, idx: int) -> ChunkRow:
        row = self.db.execute(
            "SELECT * FROM chunks WHERE job_id = ? AND idx = ?", (job_id, idx)
        ).fetchone()
        return _chunk(row)

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
        input_ref: str | None = None,
        results: Sequence[str] = (),
        total: int = 0,
        completed: int = 0,
        failed: int = 0,
    ) -> None:
        stamp = now_iso()
        self.db.execute(
            "INSERT INTO batches (id, job_id, chunk_idx, status, input_ref, results,"
            " total, completed, failed, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
            " results = excluded.results, total = excluded.total,"
            " completed = excluded.completed, failed = excluded.failed,"
            " updated_at = excluded.updated_at",
            (
                batch_id,
                job_id,
                chunk_idx,
                status,
                input_ref,
                json.dumps(list(results)),
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

    def mark_deleted(self, batch_id: str) -> None:
        """The batch's files at the provider are deleted (nothing left to clean there)."""
        self.db.execute("UPDATE batches SET remote_deleted = 1 WHERE id = ?", (batch_id,))

    def batch_ids(self) -> frozenset[str]:
        """Every batch id the ledger knows (a lost create never adopts one of these)."""
        return frozenset(r[0] for r in self.db.execute("SELECT id FROM batches"))

    # --- usage ----------------------------------------------------------------------

    def commit_usage(
        self,
        event: UsageEvent,
        *,
        within: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Record a batch's estimated spend (committed, not yet actual).

        ``within`` runs first in the same transaction (a budget check that raises
        ``BudgetExceeded``), so a check and the commitment it allows are one step.
        """
        values = _usage_values(event, committed=True)
        with self.transaction() as db:
            if within is not None:
                within(db)
            db.execute(
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

    def upsert_usage(self, event: UsageEvent) -> None:
        """Record the usage so far of a unit that grows (a chunk's direct answers)."""
        values = _usage_values(event, committed=False)
        self.db.execute(
            f"INSERT OR REPLACE INTO usage_events ({', '.join(values)})"
            f" VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )

    def set_reservation(
        self, batch_id: str, input_tokens: int, output_tokens: int, cost: Decimal | None
    ) -> None:
        """Update a reservation to what its unit may still spend (none left: dropped)."""
        if input_tokens + output_tokens <= 0:
            self.release_usage(batch_id)
            return
        self.db.execute(
            "UPDATE usage_events SET input_tokens = ?, output_tokens = ?, total_tokens = ?,"
            " cost = ? WHERE batch_id = ? AND committed = 1",
            (
                input_tokens,
                output_tokens,
                input_tokens + output_tokens,
                str(cost) if cost is not None else None,
                batch_id,
            ),
        )

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
        return [_event(r) for r in rows]

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

    def learned_limits(self) -> dict[str, int]:
        rows = self.db.execute("SELECT model, enqueued_tokens FROM learned_limits").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def forget_limits(self, model: str | None = None) -> int:
        """Forget learned enqueued-token limits (of one model, or all); returns how many."""
        if model is None:
            cursor = self.db.execute("DELETE FROM learned_limits")
        else:
            cursor = self.db.execute("DELETE FROM learned_limits WHERE model = ?", (model,))
        return cursor.rowcount


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
