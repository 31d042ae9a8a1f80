"""The provider seam: what the core knows of any provider, and what a provider offers.

The core (planning, executors, scoring, merge, ledger, budgets) talks to a provider
only through the types and protocols here. A provider module owns everything about
its service: how a request line and a request body are built from rendered messages,
how a result line or a reply is read (answer text, refusal, truncation, usage, error
code), its limits, its batch statuses, its transport and how its model names are
priced. ``docs/providers.md`` says how to add one; ``docs/architecture.md`` shows
where this sits.

Rows are named by custom_ids ``row-<index>`` (0-based input row, zero-padded): they
match every provider's custom_id rule (OpenAI: any string; Anthropic:
``^[a-zA-Z0-9_-]{1,64}$``), so a result maps back to its row whatever answered it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from batchgrader.money.pricing import Usage
from batchgrader.prompting.options import RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.prompting.rules import ModelRules

_CUSTOM_ID = re.compile(r"^row-(\d+)$")


def custom_id(row: int, width: int) -> str:
    """The custom_id of a 0-based input row."""
    return f"row-{row:0{width}d}"


def id_width(rows: int) -> int:
    """Digits of the custom_ids of a file with ``rows`` rows (at least 6)."""
    return max(6, len(str(max(rows - 1, 0))))


def row_of(cid: str) -> int | None:
    """The input row a custom_id names, or None if it is not one of ours."""
    match = _CUSTOM_ID.match(cid)
    return int(match.group(1)) if match else None


# --- batches ---------------------------------------------------------------------------


class BatchState(StrEnum):
    """Where a provider batch is, in the core's words (each provider maps its own)."""

    RUNNING = "running"  # accepted, validating or processing
    CANCELLING = "cancelling"  # a cancel was asked; may still finish rows
    COMPLETED = "completed"  # ended: every request has a result
    FAILED = "failed"  # refused as a whole (validation): nothing ran, nothing billed
    EXPIRED = "expired"  # the window passed: partial results
    CANCELLED = "cancelled"  # cancelled: partial results

    @property
    def terminal(self) -> bool:
        return self not in (BatchState.RUNNING, BatchState.CANCELLING)


#: Batch error codes every provider maps its own refusals to.
TOKEN_LIMIT = "token_limit_exceeded"  # the enqueued-token limit: wait and resubmit
INPUT_MISSING = "input_file_missing"  # the input went missing after create: resubmit


@dataclass(frozen=True)
class BatchError:
    """Why a provider refused a whole batch (one entry of its errors)."""

    code: str
    message: str
    line: int | None = None
    #: The enqueued-token limit a ``TOKEN_LIMIT`` refusal states, when it states one.
    limit: int | None = None


@dataclass(frozen=True)
class BatchInfo:
    """What the core uses of a provider batch."""

    id: str
    status: str  # the provider's own word, shown to people
    state: BatchState
    created_at: int
    total: int
    completed: int
    failed: int
    errors: tuple[BatchError, ...] = ()
    expires_at: int | None = None
    #: The provider's own token total for the batch, where it reports one.
    usage: Usage | None = None
    #: Opaque handles of the batch's results (OpenAI: output and error file ids).
    results: tuple[str, ...] = ()
    #: Opaque handle of the batch's input at the provider (OpenAI: the file id).
    input_ref: str | None = None
    tag: Mapping[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state.terminal


@dataclass(frozen=True)
class BatchTag:
    """What a chunk's batch is created with, and how a lost one is found again."""

    job_id: str
    chunk: int
    attempt: int
    source_name: str
    requests: int
    #: When the intent to create was written (epoch seconds).
    intent_at: int


@dataclass(frozen=True)
class BatchLimits:
    """One batch's limits at a provider."""

    max_requests: int
    max_bytes: int
    custom_id: re.Pattern[str]


# --- rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """Why a row has no answer to score: a code (its own field) and a message."""

    code: str
    message: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


@dataclass(frozen=True)
class Answer:
    """One row's reply: the judge's text, or why there is none; and its usage."""

    text: str | None
    error: RowError | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class LineResult:
    """One line of a result file: whose row it is, and its answer.

    ``custom_id`` is None when the line could not even be attributed to a request;
    such a line is counted as malformed and its row, if any, stays without a result.
    """

    custom_id: str | None
    answer: Answer | None


class RequestCodec(Protocol):
    """Request lines and bodies of one run, and the reading of their results."""

    def lines(self, ids: Sequence[str], systems: Sequence[str], users: Sequence[str]) -> list[str]:
        """Batch request lines (without newlines) for rows with their own system message."""
        ...

    def constant_system_lines(
        self, ids: Sequence[str], system: str, users: Sequence[str]
    ) -> list[str]:
        """Batch request lines for rows sharing one system message (the usual case)."""
        ...

    def body(self, system: str, user: str) -> dict[str, Any]:
        """The request body of one row, as a direct call sends it."""
        ...

    def split_line(self, line: str) -> tuple[str, dict[str, Any]]:
        """(custom_id, body) of one of this codec's batch request lines."""
        ...

    def parse_line(self, raw: bytes) -> LineResult:
        """One line of a batch result file (any line a server may write: never raises)."""
        ...

    def parse_reply(self, status: int, body: Any) -> Answer:
        """A direct call's reply (HTTP status and decoded JSON body; never raises)."""
        ...


class TokenCounter(Protocol):
    """Input tokens of rendered requests, as the provider will bill them (or an estimate)."""

    @property
    def kind(self) -> str:
        """``exact`` (the provider's own tokenizer) or ``approximate`` (see ``error_band``)."""
        ...

    @property
    def error_band(self) -> float:
        """Relative error bound of an approximate count (0 when exact)."""
        ...

    @property
    def name(self) -> str:
        """What counts: an encoding name, or a description of the approximation."""
        ...

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def message_overhead(self, roles: Sequence[str]) -> int: ...


class RequestCounter(Protocol):
    """Exact input tokens of whole request bodies, counted by the provider (network calls).

    For providers without an offline tokenizer (Anthropic); the core decides which
    requests to count (all of them, or a sample) and extrapolates.
    """

    #: Requests it can count within its time budget (at its rate limit).
    capacity: int
    #: What counts, for people (``count_tokens (Anthropic)``).
    name: str

    def count_bodies(self, bodies: Sequence[Mapping[str, Any]]) -> list[int]:
        """Input tokens of each request body (identical bodies are counted once)."""
        ...

    def close(self) -> None: ...


class BatchTransport(Protocol):
    """A provider's batch calls; every failure is one of ``batchgrader.errors``."""

    #: True when a tag finds a lost create's batch without doubt (batch metadata);
    #: False when candidates are only likely (count and creation time).
    exact_find: bool

    def prepare(self, request_file: Path) -> str | None:
        """Send what must precede a create (OpenAI: upload the file; returns its id)."""
        ...

    def create(
        self, request_file: Path, prepared: str | None, endpoint: str, tag: BatchTag
    ) -> BatchInfo:
        """Create the batch once: never retried inside (the caller resolves a lost answer)."""
        ...

    def candidates(self, tag: BatchTag, known: frozenset[str]) -> list[BatchInfo]:
        """Batches that may be this tag's, newest first, excluding ``known`` ids."""
        ...

    def retrieve(self, batch_id: str) -> BatchInfo: ...

    def cancel(self, batch_id: str) -> BatchInfo: ...

    def download(self, info: BatchInfo, folder: Path, stem: str) -> list[Path]:
        """Store a finished batch's result lines under ``folder``; returns the files."""
        ...

    def delete(self, info: BatchInfo | None, prepared: str | None) -> bool:
        """Delete what the batch left at the provider (best effort: logs, never raises);
        True when nothing of it is left there (``jobs clean`` tries the others again)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Reply:
    """What one direct call came back with.

    ``status`` is the HTTP status, or 0 when no answer arrived (``error`` says why).
    ``sent`` is False only when the request certainly never reached the server
    (connection refused); a request whose connection dropped after sending may have
    been executed and billed.
    """

    status: int
    body: Any = None
    error: str | None = None
    sent: bool = True
    retry_after: float | None = None
    #: Rate-limit state the server reported (x-ratelimit-* headers), lower-cased names.
    limits: Mapping[str, str] = field(default_factory=dict)


class DirectTransport(Protocol):
    """A provider's synchronous endpoint, called concurrently (asyncio)."""

    #: Where the calls go (for messages).
    base_url: str

    async def send(self, endpoint: str, body: dict[str, Any]) -> Reply:
        """POST one request body; never raises for an HTTP or network failure."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Account:
    """Who pays for a provider's requests: the key in force ("" when none) and where the
    requests go (shown masked and as a host in the ledger)."""

    key: str
    base_url: str


class Provider(Protocol):
    """One service that answers requests: OpenAI (and compatible servers), Anthropic."""

    name: str
    limits: BatchLimits
    #: Whether requests may carry sampling parameters (``request.temperature``).
    sampling: bool

    def endpoint(self, name: str, model: ModelRules, asked: str | None) -> tuple[str, str | None]:
        """(the endpoint requests for model ``name`` go to, a line saying why when the
        choice is not the obvious one); ``asked`` is ``request.endpoint``. A
        ``UsageError`` when this provider cannot serve the model there."""
        ...

    def notes(self) -> list[str]:
        """Lines a run shows, before anything is sent, about how this provider will
        handle it (how tokens are counted, say)."""
        ...

    def account(self) -> Account:
        """The key and base URL in force (no network)."""
        ...

    def codec(
        self, options: RequestOptions, prompt: Prompt, *, max_usage: int | None = None
    ) -> RequestCodec: ...

    def counter(self, options: RequestOptions, prompt: Prompt) -> TokenCounter:
        """The offline counter of these requests' input tokens (exact, or approximate)."""
        ...

    def request_counter(self, model: str) -> RequestCounter | None:
        """Exact counting of whole requests at the provider, when ``counter`` is only
        approximate and the provider can be asked (a key is set); else None."""
        ...

    def batch_transport(self) -> BatchTransport: ...

    def direct_transport(self, *, timeout: float) -> DirectTransport: ...


def read_lines(path: Path) -> Iterator[bytes]:
    """The non-blank raw lines of a result file (bytes: a bad byte is the line's problem)."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                yield raw
