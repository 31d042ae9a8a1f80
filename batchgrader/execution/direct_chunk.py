"""A chunk being answered directly: its rows in flight, its durable answers file, its
tallies.

Each final reply is appended to the chunk's answers file by one writer task that
commits in groups (the answers queued, at most ``GROUP_ROWS``, per fsync); a row's
concurrency slot is given back only once its answer is on disk. A fast fsync (a local
disk's) runs in the event loop; a slow one (a network file system's) in a worker
thread, so that the loop keeps reading answers meanwhile.
The tallies (answered, failed, usage, worst case in flight) feed the direct executor's
spend, budget checks and events.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

from batchgrader.execution.answers import answer_of, answer_record, record_line, usage_id
from batchgrader.execution.events import Identity
from batchgrader.ledger.records import ChunkRow, JobRow, UsageEvent
from batchgrader.money.pricing import Tier, Usage
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import Answer, Reply

#: Answers written per fsync at most (a group is what arrived during the last fsync).
GROUP_ROWS = 256
#: Seconds between two looks at the answers still queued when sending ends.
GROUP_SECONDS = 0.05
#: An fsync that took at most this long is run in the event loop the next time: a thread
#: would cost more than it saves (waking it and getting the GIL back took ~1 ms a group
#: on a busy loop, against ~0.15 ms for the fsync of a local SSD).
INLINE_FSYNC_SECONDS = 0.002


class DirectChunk:
    """One chunk's rows in flight, its durable answers file and its tallies.

    ``on_written`` runs once a group of answers is on disk and tallied, before its rows
    go; ``on_released`` once they have gone.
    """

    def __init__(
        self,
        job: JobRow,
        chunk: ChunkRow,
        n: int,
        path: Path,
        spec: RequestSpec,
        *,
        on_written: Callable[[DirectChunk], None],
        on_released: Callable[[DirectChunk], None],
    ) -> None:
        self.job = job
        self.chunk = chunk
        self.n = n
        self.path = path
        self.spec = spec
        self.on_written = on_written
        self.on_released = on_released
        self.queue: asyncio.Queue[tuple[bytes, asyncio.Future[None], Answer]] = asyncio.Queue()
        self.handle: IO[bytes] = path.open("ab")
        self.usage = Usage()
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self.in_flight_worst = Decimal(0)
        #: Requests whose connection dropped after they were sent: they may have run and
        #: been billed, their usage unknown. Budgets count each at its worst case.
        self.dropped = 0
        self.spent_now = Decimal(0)
        #: A request's input tokens at most (the chunk's mean, rounded up).
        self.per_row_tokens = -(-chunk.tokens // max(chunk.requests, 1))
        self.worst = Decimal(0)  # a request's cost at worst
        #: Rows taken by a sender and not yet settled (answered and durable, or dropped
        #: by a stop); once every row is sent (``all_sent``) and none is, the chunk ends.
        self.unsettled = 0
        self.all_sent = False
        self.writer: asyncio.Task[None] | None = None
        self.started = time.monotonic()
        self.last_event = 0.0
        self.last_recorded = 0.0  # when the ledger last had its spend
        self.answered_before = 0
        self.base_cost = Decimal(0)
        self.fsync_seconds = 0.0  # how long the last fsync took

    # --- durability -----------------------------------------------------------------

    async def record(self, cid: str, reply: Reply) -> None:
        """Append the row's final reply; returns once it is on disk."""
        record = answer_record(cid, reply)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((record_line(record), future, answer_of(record, self.spec)))
        await future

    async def writer_loop(self) -> None:
        """Group commit: write the answers queued, fsync once, then let them go.

        No timer: the answers that arrive while one group is being made durable are
        the next group. Waiting for a group to fill would keep each row's concurrency
        slot (and its idle connection) that much longer.
        """
        while True:
            group = [await self.queue.get()]
            while len(group) < GROUP_ROWS and not self.queue.empty():
                group.append(self.queue.get_nowait())
            try:
                self.handle.write(b"".join(line for line, _, _ in group))
                self.handle.flush()
                if self.fsync_seconds <= INLINE_FSYNC_SECONDS:
                    self.fsync_seconds = _timed_fsync(self.handle.fileno())
                else:
                    self.fsync_seconds = await asyncio.to_thread(_timed_fsync, self.handle.fileno())
            except OSError as exc:  # the disk refused (full, gone): the rows waiting say so
                for _, future, _ in group:
                    if not future.done():
                        future.set_exception(exc)
                raise
            finally:
                # Paid for, and in the file now unless the disk refused (Ctrl-C during the
                # fsync included: the re-run reads them as answered): in the tallies and
                # the ledger too, or they were paid for and not counted.
                self.count([answer for _, _, answer in group])
                self.on_written(self)
            for _, future, _ in group:
                if not future.done():
                    future.set_result(None)
            self.on_released(self)

    def count(self, answers: list[Answer]) -> None:
        """Add ``answers`` to the tallies."""
        for answer in answers:
            self.usage = self.usage + answer.usage
            if answer.error is None:
                self.done += 1
            else:
                self.failed += 1

    def close(self) -> None:
        self.handle.close()

    # --- usage ----------------------------------------------------------------------

    def usage_event(self, identity: Identity, tier: Tier, spent: Decimal | None) -> UsageEvent:
        """The chunk's answers so far as one usage event (replaced as answers arrive)."""
        price = self.spec.price
        u = self.usage
        return UsageEvent(
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
            batch_id=usage_id(self.job.id, self.chunk.idx),
            job_id=self.job.id,
            source_file=self.job.input_path,
            api_key_prefix=identity.api_key_prefix,
            base_url_host=identity.base_url_host,
            model=price.model if price else self.spec.options.model,
            endpoint=self.job.endpoint,
            input_tokens=u.input_tokens,
            cached_input_tokens=u.cached_input_tokens,
            output_tokens=u.output_tokens,
            reasoning_tokens=u.reasoning_tokens,
            total_tokens=u.total_tokens,
            cost=spent,
            committed=False,
            requests_completed=self.done,
            requests_failed=self.failed,
            cache_write_tokens=u.cache_write_tokens,
            provider=self.spec.provider.name,
            tier=tier,
            executor="direct",
        )


def _timed_fsync(fd: int) -> float:
    """fsync ``fd``; the seconds it took."""
    started = time.perf_counter()
    os.fsync(fd)
    return time.perf_counter() - started
