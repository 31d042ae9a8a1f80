"""Running a job's chunks through the executors: batches, then direct chunks.

``Dispatch`` picks the executor of each chunk's mode, switches a ``--mode auto`` run to
direct when the server has no Batch API, and follows a job's deadline: when the
batches cannot finish in time, it cancels them, keeps what they finished and sends the
rest directly, within the budget.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from batchgrader.errors import (
    BatchApiMissing,
    BudgetExceeded,
    BudgetStop,
    UsageError,
)
from batchgrader.execution.answers import usage_id
from batchgrader.execution.batch import BatchExecutor
from batchgrader.execution.deadline import DeadlinePlan, default_rate, parse_deadline
from batchgrader.execution.resubmit import add_retry_chunks
from batchgrader.execution.session import GradeOptions, Session
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow
from batchgrader.money import budget
from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.workload import Workload

log = logging.getLogger(__name__)


class Dispatch:
    """Runs one session's jobs through the executors."""

    def __init__(self, session: Session) -> None:
        self.s = session
        #: Lines for each job's summary (what a deadline switch did).
        self.notes: dict[str, list[str]] = {}

    def execute(self, job: JobRow, options: GradeOptions) -> list[ChunkRow]:
        """Run the job's chunks: batches first (unless none), then direct chunks."""
        s = self.s
        chunks = s.ledger.chunks(job.id)
        if any(c.mode is ChunkMode.BATCH and not c.status.finished for c in chunks):
            executor = BatchExecutor(
                s.transport,
                s.ledger,
                s.settings,
                s.spec,
                s.identity,
                on_event=s.on_event,
                clock=s.clock,
                policy=s.policy,
                on_tick=s.on_tick,
            )
            plan = self._deadline_plan(job)
            stop_when = None
            if plan is not None and not options.detach:
                stop_when = lambda: plan.due(datetime.now(UTC), self._outstanding(job))  # noqa: E731
            try:
                chunks = executor.run(job, detach=options.detach, stop_when=stop_when)
            except BatchApiMissing as exc:
                if s.settings.run.mode != "auto":
                    raise
                self._switch_to_direct(job, exc)
                chunks = s.ledger.chunks(job.id)
            batch_left = any(c.mode is ChunkMode.BATCH and not c.status.finished for c in chunks)
            if plan is not None and batch_left and not options.detach:
                chunks = self._finish_directly(job, executor, plan)
        if any(c.mode is ChunkMode.DIRECT and not c.status.finished for c in chunks):
            if options.detach:
                raise UsageError(
                    "Direct mode has no batches to leave running: --detach cannot be used.",
                    hint="Run without --detach (Ctrl-C keeps every answer received so far).",
                )
            chunks = self.direct(job)
        return chunks

    def direct(self, job: JobRow, *, only: set[int] | None = None) -> list[ChunkRow]:
        """Run the job's direct chunks (or those in ``only``) with the session's row executor."""
        s = self.s
        executor = s.direct_executor(s)
        try:
            return executor.run(job, only=only)
        finally:
            s.spent = executor.spent

    # --- the deadline -------------------------------------------------------------------

    def _deadline_plan(self, job: JobRow) -> DeadlinePlan | None:
        """The job's deadline (set at its first run; kept for resumes) and its plan."""
        s = self.s
        if job.deadline is None and s.settings.run.deadline is not None:
            moment = parse_deadline(s.settings.run.deadline, now=datetime.now(UTC))
            job.deadline = moment.isoformat(timespec="seconds")
            s.ledger.set_job(job.id, deadline=job.deadline)
        if job.deadline is None:
            return None
        rate = job.direct_rate or default_rate(s.settings.run.direct_concurrency)
        plan = DeadlinePlan(datetime.fromisoformat(job.deadline), rate)
        outstanding = self._outstanding(job)
        s.say(
            f"Deadline {plan.deadline:%Y-%m-%d %H:%M} UTC: if the batches are not done by "
            f"{plan.switch_at(outstanding):%H:%M} UTC, the rest is finished directly "
            f"(about {rate:.1f} rows a second)."
        )
        return plan

    def _outstanding(self, job: JobRow) -> int:
        """Rows of the job's unfinished batch chunks that no batch has answered yet."""
        s = self.s
        done = {b["chunk_idx"]: b["completed"] + b["failed"] for b in s.ledger.batches(job.id)}
        return sum(
            max(0, c.requests - (done.get(c.idx, 0) if c.status is ChunkStatus.SUBMITTED else 0))
            for c in s.ledger.chunks(job.id)
            if c.mode is ChunkMode.BATCH and not c.status.finished
        )

    def _finish_directly(
        self, job: JobRow, executor: BatchExecutor, plan: DeadlinePlan
    ) -> list[ChunkRow]:
        """The deadline is near: cancel what runs, keep what finished, send the rest
        directly, if the budget allows it (else leave the job resumable)."""
        s = self.s
        outstanding = self._outstanding(job)
        s.say(
            f"The deadline is near ({plan.deadline:%H:%M} UTC) and {outstanding:,} rows are "
            "outstanding: cancelling the unfinished batches and finishing those rows directly."
        )
        for chunk in s.ledger.chunks(job.id):  # queued batches go direct as they are
            if chunk.mode is ChunkMode.BATCH and chunk.status.queued:
                s.ledger.set_chunk(job.id, chunk.idx, mode=ChunkMode.DIRECT)
        cancelled = {info.id for info in executor.cancel(job)}
        executor.run(job)  # until the cancelled batches end: collect what they finished
        workload = Workload.of(Path(job.input_path), s.spec)
        add_retry_chunks(
            s.settings,
            s.ledger,
            job,
            s.spec,
            only=("batch_cancelled", "not_run"),
            mode=ChunkMode.DIRECT,
            workload=workload,
        )
        for chunk in s.ledger.chunks(job.id):  # their rows are resent: not a failure
            if chunk.batch_id in cancelled and chunk.status is ChunkStatus.FAILED:
                s.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.RETRIED)
        direct = [
            c for c in s.ledger.chunks(job.id) if c.mode is ChunkMode.DIRECT and c.status.queued
        ]
        try:
            check = budget.reserve_run(
                s.ledger,
                [job],
                s.spec,
                s.settings,
                now=datetime.now(UTC),
                enforce=True,
                stale=lambda job_id: False,
                chunks=direct,
            )
        except BudgetExceeded as exc:
            raise BudgetStop(
                "The deadline's switch to direct mode was refused: " + exc.message,
                hint=f"The job is left as it is: batchgrader jobs resume {job.id} finishes "
                "it directly (raise --max-cost first), or grade without --deadline.",
            ) from None
        rows = sum(c.requests for c in direct)
        cost_direct = check.estimate.expected_cost
        s.say(
            f"Finishing {rows:,} rows directly"
            + (f" (expected ${cost_direct:.4f})" if cost_direct is not None else "")
            + "."
        )
        chunks = self.direct(job)
        self.notes.setdefault(job.id, []).append(self._switch_note(job, {c.idx for c in direct}))
        return chunks

    def _switch_note(self, job: JobRow, switched: set[int]) -> str:
        """How many rows went each way, and what finishing directly cost against waiting."""
        s = self.s
        chunks = s.ledger.chunks(job.id)
        direct_rows = sum(c.requests for c in chunks if c.idx in switched)
        batch_rows = sum(c.requests for c in chunks if c.mode is ChunkMode.BATCH) - direct_rows
        ids = {usage_id(job.id, idx) for idx in switched}
        events = [
            e for e in s.ledger.usage_events(job_id=job.id) if not e.committed and e.batch_id in ids
        ]
        paid = sum((e.cost for e in events if e.cost is not None), Decimal(0))
        usage = Usage(
            input_tokens=sum(e.input_tokens for e in events),
            cached_input_tokens=sum(e.cached_input_tokens for e in events),
            output_tokens=sum(e.output_tokens for e in events),
        )
        waiting = cost(s.spec.price, usage, tier=Tier.BATCH) if s.spec.price else None
        return (
            f"deadline: {max(batch_rows, 0):,} rows by batch, {direct_rows:,} finished directly "
            f"for ${paid:.6f}"
            + (f" (waiting for the batch would have cost ${waiting:.6f})" if waiting else "")
        )

    def _switch_to_direct(self, job: JobRow, exc: BatchApiMissing) -> None:
        """``--mode auto``: the server has no Batch API; its queued chunks go direct."""
        s = self.s
        for chunk in s.ledger.chunks(job.id):
            if chunk.mode is ChunkMode.BATCH and chunk.status in (
                ChunkStatus.PENDING,
                ChunkStatus.PREPARED,
                ChunkStatus.CREATING,
            ):
                s.ledger.set_chunk(
                    job.id,
                    chunk.idx,
                    mode=ChunkMode.DIRECT,
                    status=ChunkStatus.PENDING,
                    prepared_ref=None,
                    attempt=0,
                    intent_at=None,
                )
        s.say(
            f"{exc.server} has no Batch API ({exc.route} answered HTTP {exc.status}): "
            f"grading directly, {s.settings.run.direct_concurrency} requests at a time "
            "(--mode auto)."
        )
