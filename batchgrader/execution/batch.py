"""The batch executor: drive a job's batch chunks to the end, never paying twice.

One loop per job, single-threaded, driven by an injected clock: submit what the caps
allow (``execution/batch_submit.py``: each batch created at most once per chunk
attempt), poll the submitted batches with backoff, and collect each one that ends
(``execution/batch_collect.py``: results stored, usage reconciled). Each chunk moves
through ``pending -> prepared -> creating -> submitted -> done | failed``.

A batch that never ends (a server that strands it) is cancelled once
``run.max_batch_wait_seconds`` have passed since its creation; what it finished is
kept and its other rows are marked ``batch_stuck``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from batchgrader.execution.batch_collect import STUCK, BatchCollector
from batchgrader.execution.batch_submit import BatchSubmitter
from batchgrader.execution.events import (
    BatchEvents,
    Clock,
    EventSink,
    Identity,
    SystemClock,
    TickSink,
)
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.execution.summary import RETRY_PREFIX
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow
from batchgrader.ledger.store import Ledger
from batchgrader.money.budget import reservation_id
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import BatchInfo, BatchState, BatchTransport
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: Seconds a cancelled stuck batch may take to end before it is given up on.
CANCEL_GRACE_SECONDS = 600.0


class BatchExecutor:
    """Runs one job's batch chunks to the end (or submits them, with ``detach``)."""

    mode = ChunkMode.BATCH

    def __init__(
        self,
        transport: BatchTransport,
        ledger: Ledger,
        settings: Settings,
        spec: RequestSpec,
        identity: Identity,
        *,
        on_event: EventSink = lambda e: None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        on_tick: TickSink = lambda: None,
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self.settings = settings
        self.spec = spec
        self.identity = identity
        self.on_event = on_event
        self.on_tick = on_tick
        self.clock = clock or SystemClock()
        self.policy = policy or RetryPolicy(
            retries=settings.api.max_retries,
            max_wait=settings.api.retry_max_wait_seconds,
            sleep=self.clock.sleep,
        )
        self.events = BatchEvents(on_event)
        self.submitter = BatchSubmitter(
            transport,
            ledger,
            settings,
            spec,
            identity,
            clock=self.clock,
            policy=self.policy,
            events=self.events,
        )
        self.collector = BatchCollector(
            transport, ledger, settings, spec, identity, policy=self.policy, events=self.events
        )
        self._halted = False
        self._stuck: set[int] = set()  # chunks whose batch was cancelled as stuck
        self._cancel_asked: dict[int, float] = {}
        self._only: set[int] | None = None  # the chunks this run drives (None: all)

    # --- the loop -------------------------------------------------------------------

    def run(
        self,
        job: JobRow,
        *,
        only: set[int] | None = None,
        detach: bool = False,
        stop_when: Callable[[], bool] | None = None,
    ) -> list[ChunkRow]:
        """Drive the job's batch chunks (or those in ``only``) until each is finished (or,
        detached, submitted).

        ``stop_when`` is asked after each round of polls; True returns at once, batches
        still running (a deadline that calls for finishing the rest directly).
        """
        run = self.settings.run
        interval = run.poll_interval_seconds
        last_seen: dict[int, tuple[str, int, int]] = {}
        chunks = self.ledger.chunks(job.id)
        self.events.job_requests = sum(
            c.requests for c in chunks if not c.request_file.startswith(RETRY_PREFIX)
        )
        self._only = only
        while True:
            chunks = self._mine(job)
            self._halted = self._halted or (
                run.halt_on_chunk_failure and any(c.status is ChunkStatus.FAILED for c in chunks)
            )
            changed = self.submitter.submit(job, chunks, halted=self._halted)
            if detach:  # submitted what the caps allow; the rest stays queued in the ledger
                return self.ledger.chunks(job.id)
            for chunk in self._mine(job):
                if chunk.status is ChunkStatus.SUBMITTED:
                    changed |= self._poll(job, chunk, len(chunks), last_seen)
            before = {c.idx: c.status for c in chunks}
            chunks = self._mine(job)
            if all(c.status.finished for c in chunks):
                return self.ledger.chunks(job.id)
            if stop_when is not None and stop_when():
                return self.ledger.chunks(job.id)
            freed = any(c.status.finished and not before[c.idx].finished for c in chunks)
            if freed and any(c.status.queued for c in chunks):
                interval = run.poll_interval_seconds
                continue  # a slot just freed up: submit the next chunk without waiting
            interval = (
                run.poll_interval_seconds
                if changed
                else min(interval * 1.5, run.poll_max_interval_seconds)
            )
            self.on_tick()
            self.clock.sleep(interval * random.uniform(0.9, 1.1))

    def _mine(self, job: JobRow) -> list[ChunkRow]:
        return [
            c
            for c in self.ledger.chunks(job.id)
            if c.mode is ChunkMode.BATCH and (self._only is None or c.idx in self._only)
        ]

    # --- polling --------------------------------------------------------------------

    def _poll(
        self, job: JobRow, chunk: ChunkRow, n: int, last_seen: dict[int, tuple[str, int, int]]
    ) -> bool:
        assert chunk.batch_id is not None
        batch_id = chunk.batch_id
        info = self.policy.call(lambda: self.transport.retrieve(batch_id), f"batch {batch_id}")
        state = (info.status, info.completed, info.failed)
        changed = last_seen.get(chunk.idx) != state
        last_seen[chunk.idx] = state
        waited = self.clock.now() - info.created_at if info.created_at else None
        if changed:
            self.ledger.record_batch(
                info.id,
                job.id,
                chunk.idx,
                info.status,
                input_ref=info.input_ref,
                results=info.results,
                total=info.total,
                completed=info.completed,
                failed=info.failed,
            )
        if not info.terminal:
            info = self._check_stuck(job, chunk, info, waited)
        if not info.terminal:
            if changed:
                self.events.emit(
                    job,
                    chunk,
                    n,
                    info.status,
                    batch_id=info.id,
                    completed=info.completed,
                    failed=info.failed,
                    total=info.total or chunk.requests,
                    waited=waited,
                )
            return changed
        if info.state is BatchState.FAILED:
            self.submitter.batch_failed(job, chunk, n, info)
        else:
            self.collector.collect(job, chunk, n, info, stuck=chunk.idx in self._stuck)
        return True

    def _check_stuck(
        self, job: JobRow, chunk: ChunkRow, info: BatchInfo, waited: float | None
    ) -> BatchInfo:
        """Cancel a batch past ``run.max_batch_wait_seconds``; give up on one that will
        not even end after its cancel (its rows become ``batch_stuck``)."""
        limit = self.settings.run.max_batch_wait_seconds
        if waited is None or waited <= limit:
            return info
        if chunk.idx not in self._stuck:
            self._stuck.add(chunk.idx)
            log.warning(
                "Batch %s has waited %.0f s (run.max_batch_wait_seconds is %.0f): cancelling "
                "it; what it finished is kept, its other rows are marked batch_stuck.",
                info.id,
                waited,
                limit,
            )
            self.ledger.set_chunk(job.id, chunk.idx, error=str(STUCK))
            info = self._cancel(info.id)
            self._cancel_asked[chunk.idx] = self.clock.now()
            return info
        asked = self._cancel_asked.setdefault(chunk.idx, self.clock.now())
        if self.clock.now() - asked > CANCEL_GRACE_SECONDS:
            log.warning("Batch %s did not end after its cancel: giving up on it.", info.id)
            return BatchInfo(
                id=info.id,
                status="stuck",
                state=BatchState.CANCELLED,
                created_at=info.created_at,
                total=info.total,
                completed=info.completed,
                failed=info.failed,
                input_ref=info.input_ref,
            )
        return info

    # --- cancelling -----------------------------------------------------------------

    def cancel(self, job: JobRow) -> list[BatchInfo]:
        """Cancel the job's running batches; queued chunks are halted, never sent."""
        cancelled = []
        for chunk in self._mine(job):
            if chunk.status is ChunkStatus.SUBMITTED and chunk.batch_id:
                info = self._cancel(chunk.batch_id)
                self.ledger.record_batch(info.id, job.id, chunk.idx, info.status)
                cancelled.append(info)
            elif chunk.status.queued:
                self.ledger.set_chunk(
                    job.id,
                    chunk.idx,
                    status=ChunkStatus.HALTED,
                    error="not submitted: job cancelled",
                )
                self.ledger.release_usage(reservation_id(job.id, chunk.idx))
        return cancelled

    def _cancel(self, batch_id: str) -> BatchInfo:
        return self.policy.call(lambda: self.transport.cancel(batch_id), f"cancel of {batch_id}")
