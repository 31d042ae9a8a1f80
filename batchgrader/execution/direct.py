"""The direct executor: the same durable jobs with bounded concurrent synchronous calls.

For servers without a Batch API (vLLM, Ollama, llama.cpp, LM Studio, SGLang), OpenAI's
flex tier, or a quick run at synchronous prices. A run's rows, chunk after chunk as
one stream, are sent at most ``run.direct_concurrency`` at a time, paced by
``run.requests_per_minute`` / ``run.tokens_per_minute`` and by the server's rate
limits (a 429 slows the whole run, then it speeds up again). Each final answer is
appended to its chunk's answers file and made durable (one fsync per group of
answers) before its concurrency slot goes to another row, so a crash loses at most
the requests in flight; a re-run sends only the rows without an answer. Spend is
recorded as answers arrive, and sending stops before the spent plus in-flight worst
case could pass ``budget.max_cost_usd``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from batchgrader.errors import (
    BudgetStop,
    JobCancelled,
    QuotaExhausted,
    ServerUnreachable,
)
from batchgrader.execution.answers import (
    answer_of,
    answers_file,
    direct_tier,
    finish_chunk,
    pending,
    read_answers,
)
from batchgrader.execution.direct_chunk import GROUP_SECONDS, DirectChunk
from batchgrader.execution.events import ChunkEvent, Clock, EventSink, Identity, SystemClock
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.pacing import Gate, Pace, quota_exhausted, reset_seconds
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, JobStatus
from batchgrader.ledger.store import Ledger
from batchgrader.money.budget import reservation_id
from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import DirectTransport, Reply
from batchgrader.settings import Settings

if TYPE_CHECKING:
    from batchgrader.execution.session import Session

log = logging.getLogger(__name__)

#: Seconds between two board updates of a running chunk.
EVENT_SECONDS = 0.5
#: Seconds between two ledger writes of a running chunk's spend (two writes a group of
#: answers were a tenth of the event loop's work at ``--concurrency 64``).
LEDGER_SECONDS = 0.5
#: Retries of a row refused for rate limits (429) before it is recorded as an error.
RATE_LIMIT_RETRIES = 30
#: Seconds a flex request may take (OpenAI's flex guide asks for a long client timeout).
FLEX_TIMEOUT_SECONDS = 900.0


class DirectExecutor:
    """Runs one job's direct chunks: bounded concurrent calls, answers durable row by row."""

    mode = ChunkMode.DIRECT

    def __init__(
        self,
        transport_factory: Callable[[float], DirectTransport],
        ledger: Ledger,
        settings: Settings,
        spec: RequestSpec,
        identity: Identity,
        *,
        on_event: EventSink = lambda e: None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        spent_before: Decimal = Decimal(0),
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.transport_factory = transport_factory
        self.ledger = ledger
        self.settings = settings
        self.spec = spec
        self.identity = identity
        self.on_event = on_event
        self.clock = clock or SystemClock()
        self.policy = policy or RetryPolicy(
            retries=settings.api.max_retries,
            max_wait=settings.api.retry_max_wait_seconds,
            sleep=self.clock.sleep,
        )
        self.tier = direct_tier(spec)
        self.spent = spent_before
        self.cap = settings.budget.max_cost_usd
        self.say = say
        self.possibly_executed = 0
        self._cancel_checked = 0.0
        #: Why sending stopped (budget, quota, cancel, no server); raised when it ends.
        self.stop: BaseException | None = None
        #: The chunks whose rows are being sent or settled, in chunk order.
        self.open: list[DirectChunk] = []
        #: Dollars at worst of the requests of finished chunks whose connection dropped.
        self.unknown = Decimal(0)
        #: The concurrency gate of the run (its rate-limit state is shown).
        self.gate: Gate | None = None

    # --- the loop -------------------------------------------------------------------

    def run(self, job: JobRow, *, only: set[int] | None = None) -> list[ChunkRow]:
        """Run every unfinished direct chunk of ``job`` (or those in ``only``)."""
        chunks = self.ledger.chunks(job.id)
        mine = [
            c
            for c in chunks
            if c.mode is ChunkMode.DIRECT
            and not c.status.finished
            and (only is None or c.idx in only)
        ]
        try:
            if mine:
                asyncio.run(self._run_chunks(job, mine, len(chunks)))
        finally:
            if self.possibly_executed:
                self.say(
                    f"{self.possibly_executed:,} request(s) lost their connection after "
                    "being sent: they may have run and been billed, their usage unknown "
                    "(budgets counted each at its worst case)."
                )
                self.possibly_executed = 0
        return self.ledger.chunks(job.id)

    async def _run_chunks(self, job: JobRow, chunks: list[ChunkRow], n: int) -> None:
        """Send the chunks' rows as one stream, in chunk order, through one transport,
        gate and pacing: the senders go on to a chunk's rows while the last ones of the
        chunk before are in flight (a pause at each chunk's end, with its own event loop
        and connections, cost 15-35% of the rows a second at ``--concurrency 64``), and
        a chunk is finished once its last answer is durable."""
        self.stop = None
        run = self.settings.run
        timeout = self.settings.api.timeout_seconds
        if self.tier is Tier.FLEX:
            timeout = max(timeout, FLEX_TIMEOUT_SECONDS)
        transport = self.transport_factory(timeout)
        gate = self.gate = Gate(ceiling=run.direct_concurrency, limit=run.direct_concurrency)
        requests = Pace(run.requests_per_minute)
        tokens = Pace(run.tokens_per_minute)

        def rows() -> Iterator[tuple[DirectChunk, str, dict[str, Any]]]:
            for chunk in chunks:
                if self.stop is not None:
                    return
                state, todo = self._open(job, chunk, n)
                for cid, body in todo:
                    yield state, cid, body
                state.all_sent = True
                if not state.unsettled:
                    self._close(state)

        source = rows()  # shared by the senders: each row goes to one of them

        async def sender() -> None:
            for state, cid, body in source:
                if self.stop is not None:
                    return
                state.unsettled += 1
                try:
                    await one(state, cid, body)
                finally:
                    state.unsettled -= 1
                if state.all_sent and not state.unsettled:
                    self._close(state)

        async def one(state: DirectChunk, cid: str, body: dict[str, Any]) -> None:
            await gate.acquire()
            try:
                if self.stop is not None:
                    return
                await requests.take(1)
                await tokens.take(state.per_row_tokens + self.spec.options.max_tokens)
                self._check_budget(state.worst)
                self._check_cancelled(job)
                if self.stop is not None:
                    return
                state.in_flight += 1
                state.in_flight_worst += state.worst
                try:
                    reply = await self._call(transport, gate, state, body)
                finally:
                    state.in_flight -= 1
                    state.in_flight_worst -= state.worst
                if reply is None:
                    return
                await state.record(cid, reply)  # durable before the slot is released
                await gate.succeeded()
            finally:
                await gate.release()

        senders = [asyncio.create_task(sender()) for _ in range(run.direct_concurrency)]
        try:
            await asyncio.gather(*senders)
        finally:
            for task in senders:  # one failed: the others stop too
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            for state in list(self.open):  # stopped, cancelled or failed: keep what is durable
                await self._abandon(state)
            await transport.aclose()
        if self.stop is not None:
            raise self.stop

    def _open(
        self, job: JobRow, chunk: ChunkRow, n: int
    ) -> tuple[DirectChunk, list[tuple[str, dict[str, Any]]]]:
        """The chunk's state (its tallies counting the answers recorded before a crash or
        Ctrl-C), its writer started, and its rows without an answer."""
        files = JobFiles(self.settings, job.id)
        files.results.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = answers_file(files, chunk)
        answered = read_answers(path)
        todo = pending(files, chunk, self.spec, set(answered))
        self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.SUBMITTED)
        state = DirectChunk(
            job, chunk, n, path, self.spec, on_written=self.record_spend, on_released=self.emit
        )
        state.count([answer_of(record, self.spec) for record in answered.values()])
        state.answered_before = len(answered)
        price = self.spec.price
        state.base_cost = cost(price, state.usage, tier=self.tier) if price else Decimal(0)
        state.worst = self._worst_cost(state.per_row_tokens)
        state.writer = asyncio.create_task(state.writer_loop())
        self.open.append(state)
        self.emit(state, force=True)
        return state, todo

    def _close(self, state: DirectChunk) -> None:
        """Every row of the chunk sent and settled: its spend recorded, and, unless the
        run stops, its results file written and its status set."""
        if state.writer is not None:
            state.writer.cancel()  # idle: every answer queued is on disk and tallied
        self._settle(state)
        if self.stop is None:
            self._collect(state)

    async def _abandon(self, state: DirectChunk) -> None:
        """The run ends before the chunk does: let its last group reach the disk, record
        its spend, and leave it for the re-run."""
        while not state.queue.empty() and state.writer is not None and not state.writer.done():
            await asyncio.sleep(GROUP_SECONDS)
        if state.writer is not None:
            state.writer.cancel()
            # A group cut in its fsync is in the file: the writer tallies it as it ends.
            await asyncio.gather(state.writer, return_exceptions=True)
        self._settle(state)
        self.emit(state, force=True)

    def _settle(self, state: DirectChunk) -> None:
        state.close()
        self.record_spend(state, force=True)  # the last answers' spend, Ctrl-C included
        self.spent += state.spent_now
        self.unknown += state.dropped * state.worst
        self.open.remove(state)

    async def _call(
        self, transport: DirectTransport, gate: Gate, state: DirectChunk, body: dict[str, Any]
    ) -> Reply | None:
        """One row's request until it has a final reply (None: the run stops first)."""
        endpoint = self.spec.options.endpoint
        attempts = rate_limited = 0
        while True:
            reply = await transport.send(endpoint, body)
            if reply.status == 0 and not reply.sent and not self.policy.contacted:
                self.stop = ServerUnreachable(
                    f"Cannot connect to {transport.base_url}: the connection was refused. "
                    "Nothing was sent.",
                    hint="Check the base URL setting (OPENAI_BASE_URL / api.base_url), or "
                    "start the server it names.",
                )
                return None
            if reply.status:
                self.policy.contacted = True
            elif reply.sent:  # it may have run and been billed: its usage is unknown
                state.dropped += 1
                self.possibly_executed += 1
            if 200 <= reply.status < 300:
                used_up = reset_seconds(reply.limits)
                if used_up:  # the last request the limit allows: wait for its reset
                    gate.pause(min(used_up, 600.0), "rate limit used up")
                    log.info("Rate limit: %s", gate.state)
                    self.emit(state, force=True)
                return reply
            if self.stop is not None:
                return None  # not final: the row is sent again when the run resumes
            if reply.status == 429 and quota_exhausted(reply.body):
                self.stop = QuotaExhausted(
                    "The account has no quota or credits left.",
                    hint="Add credits or raise the quota, then run the same command again: "
                    "rows already answered are not sent again.",
                )
                return None
            if reply.status == 429 and rate_limited < RATE_LIMIT_RETRIES:
                rate_limited += 1
                wait = (
                    reply.retry_after
                    or reset_seconds(reply.limits)
                    or self.policy.backoff(rate_limited)
                )
                gate.throttled(min(wait, 600.0), "rate limited")
                log.info("Rate limit: %s", gate.state)
                self.emit(state, force=True)
                await asyncio.sleep(min(wait, 600.0))
                continue
            transient = reply.status in (0, 408, 409) or reply.status >= 500
            if transient and attempts < self.settings.api.max_retries:
                attempts += 1
                log.info(
                    "Retrying a request (try %d of %d): %s",
                    attempts + 1,
                    self.settings.api.max_retries + 1,
                    reply.error or f"HTTP {reply.status}",
                )
                await asyncio.sleep(self.policy.backoff(attempts))
                continue
            return reply  # a 4xx, or a failure that outlasted the retries: the row's error

    # --- money ------------------------------------------------------------------------

    def _worst_cost(self, per_row_tokens: int) -> Decimal:
        price = self.spec.price
        if price is None:
            return Decimal(0)
        usage = Usage(input_tokens=per_row_tokens, output_tokens=self.spec.options.max_tokens)
        return cost(price, usage, tier=self.tier)

    def _check_budget(self, worst: Decimal) -> None:
        """Stop sending before spent + in flight + this request could pass the cap.

        The chunks still open count their answers so far and their requests in flight
        (at their worst), and every request whose connection dropped counts at its worst.
        """
        if self.cap is None or self.stop is not None:
            return
        spent = self.spent + sum((s.spent_now for s in self.open), Decimal(0))
        in_flight = sum((s.in_flight_worst for s in self.open), Decimal(0))
        unknown = self.unknown + sum((s.dropped * s.worst for s in self.open), Decimal(0))
        if spent + in_flight + unknown + worst > self.cap:
            dropped = (
                f", ${unknown:.6f} at worst for {self.possibly_executed:,} request(s) whose "
                "connection dropped (usage unknown)"
                if self.possibly_executed
                else ""
            )
            self.stop = BudgetStop(
                f"Stopped sending: the next request could bring this run past "
                f"budget.max_cost_usd (${self.cap}): ${spent:.6f} spent, "
                f"${in_flight:.6f} in flight at worst{dropped}. Rows answered so "
                "far are kept.",
                hint="Raise --max-cost and run the same command again: only the rows "
                "without an answer are sent.",
            )

    def _check_cancelled(self, job: JobRow) -> None:
        """Stop sending once the job is cancelled, at most a second after."""
        if self.stop is not None:
            return
        now = time.monotonic()
        if now - self._cancel_checked > 1.0:  # `jobs cancel` from another process
            self._cancel_checked = now
            row = self.ledger.job(job.id)
            if row is not None and row.status is JobStatus.CANCELLED:
                self.stop = JobCancelled(
                    f"Job {row.id} was cancelled: sending stopped. The rows answered are kept.",
                    hint=f"batchgrader jobs resume {row.id} sends the rest and writes the "
                    "graded file.",
                )

    def record_spend(self, state: DirectChunk, *, force: bool = False) -> None:
        """The chunk's spend so far (for the budget checks) and, at most every
        ``LEDGER_SECONDS`` unless forced, in the ledger: its answers as one usage event,
        the reservation shrunk to the rows left.

        Between two writes the ledger lags safely: what it has not yet counted as spent
        is still reserved at its worst case, and the answers file, which a re-run reads,
        has every answer.
        """
        price = self.spec.price
        spent = cost(price, state.usage, tier=self.tier) if price else None
        if spent is not None:
            state.spent_now = spent - state.base_cost
        now = time.monotonic()
        if not force and now - state.last_recorded < LEDGER_SECONDS:
            return
        state.last_recorded = now
        self.ledger.upsert_usage(state.usage_event(self.identity, self.tier, spent))
        remaining = max(0, state.chunk.requests - state.done - state.failed) + state.dropped
        worst = Usage(
            input_tokens=remaining * state.per_row_tokens,
            output_tokens=remaining * self.spec.options.max_tokens,
        )
        self.ledger.set_reservation(
            reservation_id(state.job.id, state.chunk.idx),
            worst.input_tokens,
            worst.output_tokens,
            cost(price, worst, tier=self.tier) if price else None,
        )

    # --- the end of a chunk -----------------------------------------------------------

    def _collect(self, state: DirectChunk) -> None:
        status = finish_chunk(self.ledger, self.settings, self.spec, state.job, state.chunk)
        final = "completed" if status is ChunkStatus.DONE else "failed"
        self.emit(state, force=True, status=final)

    # --- events -----------------------------------------------------------------------

    def emit(self, state: DirectChunk, *, force: bool = False, status: str = "running") -> None:
        now = time.monotonic()
        if not force and now - state.last_event < EVENT_SECONDS:
            return
        state.last_event = now
        elapsed = max(now - state.started, 1e-9)
        fresh = state.done + state.failed - state.answered_before
        price = self.spec.price
        spent = cost(price, state.usage, tier=self.tier) if price else None
        self.on_event(
            ChunkEvent(
                job_id=state.job.id,
                file=state.job.input_path,
                chunk=state.chunk.idx,
                chunks=state.n,
                status=status,
                completed=state.done,
                failed=state.failed,
                total=state.chunk.requests,
                tokens=state.usage.total_tokens,
                cost=str(spent) if spent is not None else None,
                error=(self.gate.state if self.gate and status == "running" else "") or None,
                mode="direct",
                in_flight=state.in_flight,
                rows_per_second=fresh / elapsed,
                tokens_per_second=state.usage.total_tokens / elapsed if fresh else 0.0,
            )
        )


def direct_executor(session: Session) -> DirectExecutor:
    """The session's row executor unless it is given another (``Session.direct_executor``)."""
    return DirectExecutor(
        lambda timeout: session.spec.provider.direct_transport(timeout=timeout),
        session.ledger,
        session.settings,
        session.spec,
        session.identity,
        on_event=session.on_event,
        clock=session.clock,
        policy=session.policy,
        spent_before=session.spent,
        say=session.say,
    )
