"""The ledger's rows as typed records, and the statuses they move through."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is (one input file graded with one set of request settings)."""

    RUNNING = "running"  # chunks queued, in flight or being collected
    DONE = "done"  # every row has its result and the graded file is written
    FAILED = "failed"  # finished, but a chunk failed or halted: rows carry the error
    CANCELLED = "cancelled"  # stopped by ``jobs cancel``: nothing more is sent
    SUPERSEDED = "superseded"  # replaced by a new job (``--force``)

    @property
    def finished(self) -> bool:
        return self is not JobStatus.RUNNING


class ChunkStatus(StrEnum):
    """Where a chunk is: ``pending -> prepared -> creating -> submitted -> done``."""

    PENDING = "pending"  # planned, nothing sent
    PREPARED = "prepared"  # its input is at the provider (OpenAI: uploaded file)
    CREATING = "creating"  # the intent to create is written: a batch may exist
    SUBMITTED = "submitted"  # its batch (or its direct requests) is running
    DONE = "done"  # collected: its rows have results
    FAILED = "failed"  # the provider refused it as a whole
    HALTED = "halted"  # not sent: the job stopped first
    RETRIED = "retried"  # failed or halted, its rows resent in later chunks

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def in_flight(self) -> bool:
        return self in (ChunkStatus.CREATING, ChunkStatus.SUBMITTED)

    @property
    def queued(self) -> bool:
        return self in (ChunkStatus.PENDING, ChunkStatus.PREPARED)


FINISHED = frozenset(
    {ChunkStatus.DONE, ChunkStatus.FAILED, ChunkStatus.HALTED, ChunkStatus.RETRIED}
)


class ChunkMode(StrEnum):
    """How a chunk's requests are executed."""

    BATCH = "batch"  # a provider batch
    DIRECT = "direct"  # bounded concurrent synchronous calls
    REUSED = "reused"  # answers paid for before (by any job), copied: nothing is sent


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
    status: JobStatus
    rows: int
    created_at: str
    updated_at: str
    provider: str = "openai"
    #: When the job must be finished (UTC, ISO 8601), if it has a deadline.
    deadline: str | None = None
    #: Measured direct throughput (rows per second), from its pilot or direct chunks.
    direct_rate: float | None = None
    #: The pilot's findings (a PilotReport as JSON).
    pilot: str | None = None


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
    status: ChunkStatus
    prepared_ref: str | None
    batch_id: str | None
    attempt: int
    intent_at: int | None
    error: str | None
    result_file: str | None
    updated_at: str
    mode: ChunkMode = ChunkMode.BATCH


@dataclass
class UsageEvent:
    """Tokens and dollars of one provider batch, or of one chunk's direct requests.

    ``batch_id`` is the provider's batch id, or ``direct:<job>:<chunk>`` for direct
    requests. While ``committed``, it is the estimate of a batch in flight (exact input,
    worst-case output); once collected, the provider's own figures.
    """

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
    cache_write_tokens: int = 0
    provider: str = "openai"
    #: batch | standard | flex: the rates it is priced at.
    tier: str = "batch"
    #: batch | direct: how its requests ran.
    executor: str = "batch"
