"""One exception tree for everything batchgrader reports to a user.

Each class carries the process exit code it maps to and an optional hint. The CLI's
error boundary (``batchgrader.cli._errors``) is the only place that turns these into
messages and exit codes; the core only raises them.
"""

from __future__ import annotations

import errno
import sqlite3


class BatchgraderError(Exception):
    """Base of every error a user can act on (never a bug)."""

    exit_code: int = 2
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --- usage, input and configuration: nothing was submitted (exit 2) ------------------


class UsageError(BatchgraderError):
    """The command line asks for something impossible."""

    code = "usage"


class ConfigError(BatchgraderError):
    """A settings file, environment variable or flag holds an invalid value."""

    code = "config"


class InputFileError(BatchgraderError):
    """An input file is missing, unreadable, malformed or lacks what is needed."""

    code = "input"


class PromptError(BatchgraderError):
    """A prompt file or preset is invalid or references unknown columns."""

    code = "prompt"


class PricingFileError(BatchgraderError):
    """The pricing table is missing or malformed."""

    code = "pricing_file"


class UnknownModelError(BatchgraderError):
    """A model has no price and ``--allow-unpriced`` was not given."""

    code = "unknown_model"


class TokenizerUnavailable(BatchgraderError):
    """tiktoken could not load its encoding (usually offline on first use)."""

    code = "tokenizer"


class PlanError(BatchgraderError):
    """The work cannot be cut into batches the API accepts."""

    code = "plan"


class OutputExistsError(BatchgraderError):
    """A file would be overwritten without ``--overwrite``."""

    code = "output_exists"


class BudgetExceeded(BatchgraderError):
    """A run would exceed a configured token or cost limit."""

    code = "budget"


class JobNotFound(BatchgraderError):
    """No job with that id is in the ledger."""

    code = "job_not_found"


class MissingApiKey(BatchgraderError):
    """A command needs an API key and none is configured."""

    code = "api_key"


class LedgerError(BatchgraderError):
    """The ledger or state folder cannot be used (not a database, read-only, full)."""

    code = "ledger"


class ServerUnreachable(BatchgraderError):
    """The first call of a run found nothing listening at the base URL."""

    code = "unreachable"


class JobBusy(BatchgraderError):
    """Another process is running the same job (and ``--no-wait`` was given)."""

    code = "job_busy"


class StorageError(BatchgraderError):
    """A disk is full or read-only where batchgrader must write (state folder, outputs)."""

    code = "storage"


_RESUME = (
    "Nothing paid for is lost: run the same command again once it can write there "
    "(batches already submitted are found again, never paid twice)."
)


#: How libraries word a full or read-only disk when they do not raise an ``OSError``
#: (SQLite; polars and other Rust code: "No space left on device (os error 28)").
_FULL = ("disk is full", "No space left on device", "os error 28", "Disk quota exceeded")
_READ_ONLY = ("readonly database", "Read-only file system", "os error 30")


def storage_error(exc: BaseException) -> StorageError | None:
    """A full or read-only disk as one line for the user (None: another problem)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" to write {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageError(f"No room left on the disk{where}.", hint=_RESUME)
        if exc.errno == errno.EROFS:
            return StorageError(f"The disk is read-only{where}.", hint=_RESUME)
        return None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = "the ledger" if isinstance(exc, sqlite3.Error) else "a file"
    if any(word in text for word in _FULL):
        return StorageError(f"No room left on the disk to write {what} ({text}).", hint=_RESUME)
    if any(word in text for word in _READ_ONLY):
        return StorageError(f"Cannot write {what}: the disk is read-only ({text}).", hint=_RESUME)
    return None


# --- the provider or the run failed (exit 1) ------------------------------------------


class ProviderError(BatchgraderError):
    """The API refused or failed a call after the retry budget was spent."""

    exit_code = 1
    code = "provider"


class TransientApiError(ProviderError):
    """A call failed in a way that may succeed later (network, 429, 5xx)."""

    code = "transient"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        refused: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        #: The connection was refused (nothing listens there).
        self.refused = refused
        #: Seconds the server asked to wait before the next try.
        self.retry_after = retry_after


class EnqueuedTokenLimit(ProviderError):
    """The provider's enqueued-token limit for the model is reached."""

    code = "token_limit_exceeded"

    def __init__(self, message: str, limit: int | None) -> None:
        super().__init__(message)
        self.limit = limit


class FileMissing(ProviderError):
    """A file id the provider no longer knows (404)."""

    code = "file_missing"


class BatchApiMissing(ProviderError):
    """The server has no Batch API (a 404 or 405 on its files or batches routes).

    Nothing was submitted, so it is a usage error: ``--mode direct`` (or ``auto``).
    """

    exit_code = 2
    code = "no_batch_api"

    def __init__(self, server: str, route: str, status: int) -> None:
        super().__init__(
            f"{server}{route} answered HTTP {status}: this server has no Batch API.",
            hint="Grade with --mode direct (bounded concurrent calls), or --mode auto.",
        )
        #: The server's base URL, and the route and status that showed it.
        self.server = server
        self.route = route
        self.status = status


class QuotaExhausted(ProviderError):
    """The account has no quota or credits left; retrying cannot help."""

    code = "insufficient_quota"


class AmbiguousBatch(ProviderError):
    """After a lost create answer, several batches could be the chunk's: a person decides."""

    code = "ambiguous_batch"


class BudgetStop(BatchgraderError):
    """A run stopped sending because the next requests could pass a budget."""

    exit_code = 1
    code = "budget_stop"


class PilotFailed(BatchgraderError):
    """The pilot's answers parsed too rarely: nothing else was submitted."""

    code = "pilot_failed"


class JobCancelled(BatchgraderError):
    """The job was cancelled (``jobs cancel``) while this process ran it."""

    exit_code = 1
    code = "cancelled"


class RunFailed(BatchgraderError):
    """A run finished but some rows or batches failed."""

    exit_code = 1
    code = "run_failed"


class Interrupted(BatchgraderError):
    """The user pressed Ctrl-C; state is saved and the job can be resumed."""

    exit_code = 130
    code = "interrupted"
