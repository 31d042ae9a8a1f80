"""Atomic writes: a temporary file beside the target, renamed over it when complete.

The one way batchgrader writes a file a user or a later run reads: graded files, parts,
exports, result files. A file killed half-way is never seen under its name.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds.

    The file is created with the mode any new file gets (0666 less the umask), not
    ``mkstemp``'s 0600: the graded file, parts and exports are the user's files. It is
    locked while the block runs, so one left behind by a killed process (unlocked and
    over a minute old) is removed the next time ``path`` is written.
    """
    _sweep_temporary_files(path)
    tmp, lock = _new_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(lock)


#: A temporary file younger than this is never swept: its writer may not hold the lock yet.
STALE_AFTER_SECONDS = 60.0


def _new_file_beside(path: Path) -> tuple[Path, int]:
    """A new, empty temporary file beside ``path``, and a descriptor that locks it."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # "being written": held until the block ends
        return tmp, fd


def _sweep_temporary_files(path: Path) -> None:
    """Remove the temporary files of ``path`` that no live process is writing."""
    if fcntl is None:  # no advisory locks (Windows): leave them
        return
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime < STALE_AFTER_SECONDS:
                continue
            fd = os.open(stale, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its writer is alive
            continue
        else:
            log.info("Removing %s, left by an interrupted write.", stale)
            stale.unlink(missing_ok=True)
        finally:
            os.close(fd)
