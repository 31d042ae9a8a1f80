"""The ledger's schema history: named steps, applied once each, in order."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run a script's statements one by one, inside the caller's transaction
    (``executescript`` would commit first)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            input_path TEXT NOT NULL,
            input_hash TEXT NOT NULL,
            model TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            request_settings TEXT NOT NULL,
            output_path TEXT,
            status TEXT NOT NULL,
            rows INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX jobs_fingerprint ON jobs (fingerprint);
        CREATE TABLE chunks (
            job_id TEXT NOT NULL REFERENCES jobs (id),
            idx INTEGER NOT NULL,
            first_row INTEGER NOT NULL,
            last_row INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            request_file TEXT NOT NULL,
            status TEXT NOT NULL,
            input_file_id TEXT,
            batch_id TEXT,
            attempt INTEGER NOT NULL DEFAULT 0,
            intent_at INTEGER,
            error TEXT,
            result_file TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (job_id, idx)
        );
        CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            chunk_idx INTEGER NOT NULL,
            status TEXT NOT NULL,
            input_file_id TEXT,
            output_file_id TEXT,
            error_file_id TEXT,
            total INTEGER NOT NULL DEFAULT 0,
            completed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE usage_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            timestamp TEXT NOT NULL,
            batch_id TEXT NOT NULL UNIQUE,
            job_id TEXT,
            source_file TEXT,
            api_key_prefix TEXT,
            base_url_host TEXT,
            model TEXT NOT NULL,
            endpoint TEXT,
            input_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            cost TEXT,
            committed INTEGER NOT NULL DEFAULT 0,
            requests_completed INTEGER NOT NULL DEFAULT 0,
            requests_failed INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX usage_timestamp ON usage_events (timestamp);
        CREATE TABLE learned_limits (
            model TEXT PRIMARY KEY,
            enqueued_tokens INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        );
        """,
    )


@migration
def m002_usage_by_job(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX usage_job ON usage_events (job_id)")


@migration
def m003_provider_seam(db: sqlite3.Connection) -> None:
    """Provider-neutral names: a chunk's prepared input, a batch's result handles;
    chunk modes; usage tiers, executors, providers and cache writes."""
    _script(
        db,
        """
        ALTER TABLE chunks RENAME COLUMN input_file_id TO prepared_ref;
        ALTER TABLE chunks ADD COLUMN mode TEXT NOT NULL DEFAULT 'batch';
        UPDATE chunks SET status = 'prepared' WHERE status = 'uploaded';
        ALTER TABLE jobs ADD COLUMN provider TEXT NOT NULL DEFAULT 'openai';
        CREATE TABLE batches_new (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            chunk_idx INTEGER NOT NULL,
            status TEXT NOT NULL,
            input_ref TEXT,
            results TEXT NOT NULL DEFAULT '[]',
            total INTEGER NOT NULL DEFAULT 0,
            completed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            remote_deleted INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        INSERT INTO batches_new (id, job_id, chunk_idx, status, input_ref, results, total,
                                 completed, failed, created_at, updated_at)
            SELECT id, job_id, chunk_idx, status, input_file_id,
                   json_array(output_file_id, error_file_id), total, completed, failed,
                   created_at, updated_at FROM batches;
        DROP TABLE batches;
        ALTER TABLE batches_new RENAME TO batches;
        CREATE INDEX batches_job ON batches (job_id);
        ALTER TABLE usage_events ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE usage_events ADD COLUMN provider TEXT NOT NULL DEFAULT 'openai';
        ALTER TABLE usage_events ADD COLUMN tier TEXT NOT NULL DEFAULT 'batch';
        ALTER TABLE usage_events ADD COLUMN executor TEXT NOT NULL DEFAULT 'batch';
        """,
    )
    # json_array keeps nulls: drop them from the result handles.
    rows = db.execute("SELECT id, results FROM batches").fetchall()
    for batch_id, results in rows:
        handles = [h for h in json.loads(results) if h]
        db.execute("UPDATE batches SET results = ? WHERE id = ?", (json.dumps(handles), batch_id))


@migration
def m004_answer_index(db: sqlite3.Connection) -> None:
    """Answers already paid for, by request: the key of a request (a hash of its line less
    the custom_id, and where it was sent) to the stored result holding its answer."""
    _script(
        db,
        """
        CREATE TABLE answers (
            key BLOB PRIMARY KEY,
            job_id TEXT NOT NULL,
            result_file TEXT NOT NULL,
            row INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX answers_job ON answers (job_id, result_file);
        """,
    )


@migration
def m005_pilot_and_deadline(db: sqlite3.Connection) -> None:
    """A job's deadline (UTC, ISO 8601), its measured direct throughput (rows per second)
    and its pilot's findings (JSON)."""
    _script(
        db,
        """
        ALTER TABLE jobs ADD COLUMN deadline TEXT;
        ALTER TABLE jobs ADD COLUMN direct_rate REAL;
        ALTER TABLE jobs ADD COLUMN pilot TEXT;
        """,
    )


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; returns the
    names applied now. Two processes opening a new ledger at once apply each step once."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    applied = []
    for name, fn in MIGRATIONS:
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                db.execute("COMMIT")
                continue
            fn(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
