"""Chunk plans: cut a file's requests into batches the Batch API accepts.

Every chunk holds at most 50,000 requests, at most 200 MB of request JSONL (the bytes
of the lines actually built, newline included), at most ``split_token_limit`` input
tokens and, when set, at most ``split_row_limit`` rows and ``max_enqueued_tokens``
tokens. Whichever limit is reached first closes the chunk. Chunks are contiguous, in
input order, non-empty, and together hold every row exactly once. The planner is
greedy and streaming (``ChunkPlanner.add`` row by row), so ``grade`` plans and writes
its chunk files in one pass;
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from batchgrader.errors import PlanError

log = logging.getLogger(__name__)

MAX_REQUESTS_PER_BATCH = 50_000
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-chunk limits; the hard caps default to the Batch API's."""

    tokens: int | None = 500_000
    rows: int | None = None
    enqueued_tokens: int | None = None
    #: Most input tokens one request may have: the model's context window less the
    #: output tokens it asks for (None: unknown model, or no such limit, as in split).
    context_tokens: int | None = None
    max_requests: int = MAX_REQUESTS_PER_BATCH
    max_bytes: int = MAX_BATCH_FILE_BYTES

    @property
    def token_cap(self) -> int | None:
        caps = [c for c in (self.tokens, self.enqueued_tokens) if c is not None]
        return min(caps) if caps else None

    @property
    def row_cap(self) -> int:
        return min(self.rows, self.max_requests) if self.rows else self.max_requests


@dataclass(frozen=True)
class Chunk:
    """A contiguous run of input rows sent as one batch."""

    index: int
    first_row: int
    last_row: int  # inclusive
    requests: int
    tokens: int
    bytes: int

    @property
    def rows(self) -> range:
        return range(self.first_row, self.last_row + 1)


class ChunkPlanner:
    """Greedy streaming planner: feed rows in order, read ``chunks`` at the end.

    Rows that are skipped (never sent) still belong to a chunk's row range; pass them
    with ``skip``. ``boundaries`` (from a forced chunk count) are rows that must start
    a new chunk (the first sent row at or after a skipped boundary starts it instead);
    the limits still apply between them.
    """

    def __init__(self, limits: Limits, boundaries: frozenset[int] = frozenset()) -> None:
        self.limits = limits
        self.boundaries = boundaries
        self._pending_boundaries = sorted(boundaries, reverse=True)
        self.chunks: list[Chunk] = []
        self._first: int | None = None
        self._last = -1
        self._requests = self._tokens = self._bytes = 0

    def add(self, row: int, tokens: int, nbytes: int) -> bool:
        """Add a sendable row; True when it is the first request of a chunk."""
        lim = self.limits
        if lim.context_tokens is not None and tokens > lim.context_tokens:
            raise PlanError(
                f"Row {row + 1} needs {tokens:,} input tokens, over the "
                f"{lim.context_tokens:,} the model's context window leaves beside the "
                "answer: the provider would refuse it.",
                hint="Shorten or remove that row ('batchgrader count' shows the longest row "
                "and how many are over the context window).",
            )
        if lim.enqueued_tokens is not None and tokens > lim.enqueued_tokens:
            raise PlanError(
                f"Row {row + 1} alone needs {tokens:,} input tokens, over the model's "
                f"enqueued-token limit of {lim.enqueued_tokens:,}: no batch can hold it.",
                hint="Shorten that row, or raise run.max_enqueued_tokens if your limit is higher.",
            )
        if nbytes > lim.max_bytes:
            raise PlanError(
                f"Row {row + 1} alone needs {nbytes:,} bytes of request JSONL, over the "
                f"{lim.max_bytes:,}-byte batch file limit."
            )
        cap = lim.token_cap
        if cap is not None and tokens > cap:
            log.warning(
                "Row %d needs %d tokens, over the %d-token chunk limit: it gets a chunk "
                "of its own.",
                row + 1,
                tokens,
                cap,
            )
        crossed = False
        pending = self._pending_boundaries
        while pending and pending[-1] <= row:
            pending.pop()
            crossed = True
        if self._requests and (
            self._requests + 1 > lim.row_cap
            or self._bytes + nbytes > lim.max_bytes
            or (cap is not None and self._tokens + tokens > cap)
            or crossed
        ):
            self._close()
        if self._first is None:
            self._first = self._last + 1
        # Leading skipped rows may have started the chunk already: its first request
        # still opens its request file.
        opened = self._requests == 0
        self._requests += 1
        self._tokens += tokens
        self._bytes += nbytes
        self._last = row
        return opened

    def skip(self, row: int) -> None:
        """A row that is not sent; it joins the current (or next) chunk's range."""
        if self._first is None:
            self._first = self._last + 1
        self._last = row

    def finish(self, total_rows: int) -> list[Chunk]:
        """Close the last chunk; trailing skipped rows join it. Returns the plan."""
        self._last = total_rows - 1
        if self._requests:
            self._close()
        elif self.chunks and self._first is not None:
            prev = self.chunks[-1]
            self.chunks[-1] = Chunk(
                prev.index, prev.first_row, self._last, prev.requests, prev.tokens, prev.bytes
            )
        asked = len(self.boundaries) + 1
        if self.boundaries and len(self.chunks) > asked:
            log.warning(
                "%d chunks were asked for; the batch limits need %d.", asked, len(self.chunks)
            )
        return self.chunks

    def _close(self) -> None:
        assert self._first is not None
        last = self._last
        self.chunks.append(
            Chunk(
                index=len(self.chunks),
                first_row=self._first,
                last_row=last,
                requests=self._requests,
                tokens=self._tokens,
                bytes=self._bytes,
            )
        )
        self._first = None
        self._requests = self._tokens = self._bytes = 0


def forced_boundaries(total_rows: int, force_chunk_count: int) -> frozenset[int]:
    """First rows of the near-equal chunks of ``force_chunk_count`` (none if not forcing)."""
    if force_chunk_count <= 1:
        return frozenset()
    return frozenset(k * total_rows // force_chunk_count for k in range(1, force_chunk_count))
