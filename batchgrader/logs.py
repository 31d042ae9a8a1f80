"""Logging setup, called once per command from the CLI (never at import).

Each run writes its own log file in the log dir (the oldest beyond ``max_logs`` are
pruned); the console gets warnings and errors through rich, more with ``--verbose``.
A filter masks the API keys in every record, wherever they might appear.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from batchgrader import __version__
from batchgrader.masking import hide

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_HANDLER_TAG = "_batchgrader_handler"


class _RedactFilter(logging.Filter):
    """Replace a secret with its masked form in every message."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = hide(message, self._secret)
        if hidden != message:
            record.msg = hidden
            record.args = None
        return True


def setup(
    *,
    console: Console,
    console_level: int,
    log_dir: Path | None,
    max_logs: int,
    file_level: int = logging.INFO,
    secrets: tuple[str, ...] = (),
) -> Path | None:
    """Configure the ``batchgrader`` logger; returns the run's log file, if any."""
    logger = logging.getLogger("batchgrader")
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_TAG, False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    redacts = [_RedactFilter(secret) for secret in secrets if secret]
    rich_handler = RichHandler(
        console=console, show_time=False, show_path=False, markup=False, rich_tracebacks=False
    )
    rich_handler.setLevel(console_level)
    handlers: list[logging.Handler] = [rich_handler]

    log_file: Path | None = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            log_file = log_dir / f"run-{stamp}-{os.getpid()}.log"
            file_handler = logging.FileHandler(log_file, encoding="utf-8", delay=False)
            os.chmod(log_file, 0o600)
        except OSError as exc:
            logger.addHandler(rich_handler)
            logger.warning("Cannot write a log file in %s: %s", log_dir, exc)
            log_file = None
        else:
            file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
            file_handler.setLevel(file_level)
            handlers.append(file_handler)
            _prune(log_dir, keep=max_logs)

    for handler in handlers:
        setattr(handler, _HANDLER_TAG, True)
        for redact in redacts:
            handler.addFilter(redact)
        if handler not in logger.handlers:
            logger.addHandler(handler)
    if log_file is not None:
        logger.info(
            "batchgrader %s started: pid %d, python %s, args %s",
            __version__,
            os.getpid(),
            sys.version.split()[0],
            " ".join(sys.argv[1:]),
        )
    return log_file


def _prune(log_dir: Path, *, keep: int) -> None:
    logs = sorted(log_dir.glob("run-*.log"), key=lambda p: p.name)
    for old in logs[:-keep]:
        old.unlink(missing_ok=True)
