"""The ledger's schema history: named steps, applied once each, in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    db.executescript(
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
        """
    )


@migration
def m002_usage_by_job(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX usage_job ON usage_events (job_id)")


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet applied; returns the names applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with db:
            fn(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
        applied.append(name)
    return applied
