"""One process drives a job at a time: a lock file per job identity (``filelock``).

A second ``grade`` of the same file, or ``jobs resume`` of a job another process is
running, waits for the lock with a clear line (or, with ``--no-wait``, stops at once
with exit 2). The lock is keyed by the job's fingerprint, so it also covers the moment
before the job exists: two runs can never create two jobs for the same work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from batchgrader.errors import JobBusy

#: Seconds between two tries while waiting for a lock.
POLL_SECONDS = 0.5


class JobLock:
    """The lock of one job identity (held by this process while it runs the job)."""

    def __init__(self, folder: Path, key: str, *, label: str) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / f"{key[:32]}.lock"
        self.label = label
        self._pid_file = folder / f"{key[:32]}.pid"
        self._lock = FileLock(self.path)

    def holder(self) -> int | None:
        """The process id of the current holder, when known."""
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def acquire(self, *, wait: bool, on_wait: Callable[[int | None], None]) -> None:
        """Take the lock; ``on_wait`` is told (once) when another process holds it."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = self.holder()
            if not wait:
                who = f"process {holder}" if holder else "another process"
                raise JobBusy(
                    f"{self.label} is being run by {who}; nothing was done.",
                    hint="Wait for it to finish, or run again without --no-wait to wait.",
                ) from None
            on_wait(holder)
            self._lock.acquire(poll_interval=POLL_SECONDS)
        try:  # who holds it, for the waiting line of others: never worth failing for
            self._pid_file.write_text(str(os.getpid()))
        except OSError:
            self._pid_file.unlink(missing_ok=True)

    def release(self) -> None:
        if self._lock.is_locked:
            self._pid_file.unlink(missing_ok=True)
            self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def __enter__(self) -> JobLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def locks_dir(state_dir: Path) -> Path:
    return state_dir / "locks"


def is_running(state_dir: Path, key: str) -> bool:
    """Whether some process holds the lock of ``key`` now."""
    lock = FileLock(locks_dir(state_dir) / f"{key[:32]}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
