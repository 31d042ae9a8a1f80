"""What executors tell the world (events), and what they are given (clock, identity).

Executors emit small immutable events to a sink and know nothing about screens; the
CLI's board draws them. Time is injected (``Clock``), so tests never wait on timers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from batchgrader.ledger.records import ChunkRow, JobRow

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class ChunkEvent:
    """A chunk changed: submitted, progressed, finished, or waits."""

    job_id: str
    file: str
    chunk: int
    chunks: int
    status: str
    batch_id: str | None = None
    completed: int = 0
    failed: int = 0
    total: int = 0
    tokens: int = 0
    cost: str | None = None
    error: str | None = None
    #: Seconds since the batch was created at the provider (None: not created).
    waited: float | None = None
    mode: str = "batch"
    #: Direct mode: requests in flight, answers and tokens per second.
    in_flight: int = 0
    rows_per_second: float | None = None
    tokens_per_second: float | None = None
    #: Requests of the whole job (every chunk, sent yet or not; retries not counted
    #: again), so the board's totals cover the whole file. 0: not known.
    job_requests: int = 0


EventSink = Callable[[ChunkEvent], None]
#: Called once per poll round, whether or not anything changed (the board's heartbeat).
TickSink = Callable[[], None]


class BatchEvents:
    """The batch executor's chunk events: each logged, then sent to the sink with the
    job's totals."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        #: Requests of the whole job (set as a run starts), for the events' totals.
        self.job_requests = 0

    def emit(
        self,
        job: JobRow,
        chunk: ChunkRow,
        n: int,
        status: str,
        *,
        batch_id: str | None = None,
        completed: int = 0,
        failed: int = 0,
        total: int = 0,
        tokens: int = 0,
        cost: str | None = None,
        error: str | None = None,
        waited: float | None = None,
    ) -> None:
        event = ChunkEvent(
            job_id=job.id,
            file=job.input_path,
            chunk=chunk.idx,
            chunks=n,
            status=status,
            batch_id=batch_id,
            completed=completed,
            failed=failed,
            total=total,
            tokens=tokens,
            cost=cost,
            error=error,
            waited=waited,
            job_requests=self.job_requests,
        )
        log.info("chunk %d/%d %s %s", chunk.idx + 1, n, status, error or batch_id or "")
        self.sink(event)


@dataclass(frozen=True)
class Identity:
    """Who spends: recorded with every usage event (never the whole key)."""

    api_key_prefix: str
    base_url_host: str
