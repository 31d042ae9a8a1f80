"""Opening the ledger's SQLite database, and SQLite's failures as one line for the user.

The database file is created readable by its user only, opened in WAL mode with a
busy timeout (several batchgrader processes may share it) and migrated to the current
schema. A ledger that cannot be used (a folder, not a database, read-only, a full
disk) is a ``LedgerError`` naming the file and what to do.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from batchgrader.errors import LedgerError
from batchgrader.ledger.migrations import migrate


def connect(path: Path) -> sqlite3.Connection:
    """The ledger's database at ``path``, created if missing, migrated, ready to use."""
    try:
        if path.is_dir():
            raise LedgerError(
                f"The ledger {path} is a folder, not a database file.",
                hint="Move it away, or point paths.state_dir elsewhere.",
            )
        folder = next(p for p in path.parents if p.exists() or p == p.parent)
        if folder.exists() and not folder.is_dir():
            raise LedgerError(
                f"The state folder {folder} is a file, not a folder.",
                hint="Move it away, or point paths.state_dir (BATCHGRADER_STATE_DIR) elsewhere.",
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            path.touch(mode=0o600)
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except OSError as exc:
        raise LedgerError(
            f"The ledger {path} cannot be opened: {exc.strerror or exc}.",
            hint="Check that paths.state_dir is a writable folder.",
        ) from None
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        # WAL with synchronous=NORMAL survives any process crash; after a power loss
        # the last commits may be missing, and a batch id lost so is found again.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ledger_error(path, exc) from None
    for suffix in ("", "-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.chmod(side, 0o600)
    return db


#: Free bytes below which a disk counts as full for SQLite (its journal needs pages).
FULL_BELOW = 256 * 1024


def _disk_state(path: Path) -> str | None:
    """ "read-only" or "full" when the ledger's disk is (SQLite often only says "disk I/O
    error" or "unable to open database file")."""
    try:
        stat = os.statvfs(path.parent)
    except (OSError, AttributeError):  # (no statvfs on Windows)
        return None
    if stat.f_flag & os.ST_RDONLY or (path.exists() and not os.access(path, os.W_OK)):
        return "read-only"
    if stat.f_bavail * stat.f_frsize < FULL_BELOW:
        return "full"
    return None


def ledger_error(path: Path, exc: sqlite3.Error) -> LedgerError:
    """A ledger that cannot be used, as one line for the user."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return LedgerError(
            f"The ledger {path} is not a batchgrader database (SQLite: {text}).",
            hint="Move it away (a new ledger is created), or point paths.state_dir elsewhere.",
        )
    state = _disk_state(path)
    if "readonly" in text or "read-only" in text or state == "read-only":
        return LedgerError(
            f"The ledger {path} is read-only (SQLite: {text}).",
            hint="Make it (and its folder) writable by you, or point paths.state_dir elsewhere.",
        )
    if "full" in text or state == "full":
        return LedgerError(
            f"No room left to write the ledger {path} (SQLite: {text}).",
            hint="Free some space on that disk, or point paths.state_dir elsewhere.",
        )
    return LedgerError(f"The ledger {path} cannot be used: {text}.")
