"""The batch executor: submit chunks under the caps, poll, collect, never pay twice.

One loop per job, single-threaded, driven by an injected clock. Each chunk moves
through ``pending -> prepared -> creating -> submitted -> done | failed`` and every
move is written to the ledger before the next step depends on it: the prepared input
right after it is sent, an intent before ``create``, the batch id right after it
returns. A ``create`` whose answer is lost is resolved by looking for the batch before
creating again (by its metadata, or, where a provider has none, by its size and time),
so a batch is created at most once per chunk attempt.

A batch that never ends (a server that strands it) is cancelled once
``run.max_batch_wait_seconds`` have passed since its creation; what it finished is
kept and its other rows are marked ``batch_stuck``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from batchgrader.errors import (
    AmbiguousBatch,
    EnqueuedTokenLimit,
    FileMissing,
    ProviderError,
    TransientApiError,
)
from batchgrader.execution.events import (
    ChunkEvent,
    Clock,
    EventSink,
    Identity,
    SystemClock,
    TickSink,
)
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.results import ChunkResults, parse_result_files
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.execution.summary import RETRY_PREFIX
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, UsageEvent
from batchgrader.ledger.store import Ledger
from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.plans import enqueued_cap
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import (
    INPUT_MISSING,
    TOKEN_LIMIT,
    BatchInfo,
    BatchState,
    BatchTag,
    BatchTransport,
    RowError,
)
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Times a chunk's results are downloaded again when they hold malformed lines.
MAX_REDOWNLOADS = 3
#: Times a chunk is resubmitted after its batch failed because its input went missing.
MAX_INPUT_RESUBMITS = 3
#: Seconds a cancelled stuck batch may take to end before it is given up on.
CANCEL_GRACE_SECONDS = 600.0
_NOT_RUN = {
    BatchState.COMPLETED: RowError("not_run", "missing from the batch's results"),
    BatchState.EXPIRED: RowError("batch_expired", "not run before the batch expired"),
    BatchState.CANCELLED: RowError("batch_cancelled", "not run before the batch was cancelled"),
}
STUCK = RowError("batch_stuck", "the batch did not finish within run.max_batch_wait_seconds")


def reservation_id(job_id: str, chunk: int) -> str:
    """The id of a chunk's budget reservation (made before anything is submitted)."""
    return f"reserve:{job_id}:{chunk}"


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
        self._halted = False
        self._unanswered: dict[int, int] = {}  # chunk -> lost create answers seen
        self._create_failures: dict[int, int] = {}
        self._redownloads: dict[int, int] = {}  # chunk -> downloads discarded as corrupt
        self._stuck: set[int] = set()  # chunks whose batch was cancelled as stuck
        self._cancel_asked: dict[int, float] = {}
        self._job_requests = 0  # requests of the whole job, for the events' totals
        self._only: set[int] | None = None  # the chunks this run drives (None: all)

    def _call(self, fn: Callable[[], T], what: str) -> T:
        return self.policy.call(fn, what)

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
        self._job_requests = sum(
            c.requests for c in chunks if not c.request_file.startswith(RETRY_PREFIX)
        )
        self._only = only
        while True:
            chunks = self._mine(job)
            self._halted = self._halted or (
                run.halt_on_chunk_failure and any(c.status is ChunkStatus.FAILED for c in chunks)
            )
            changed = self._submit(job, chunks)
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

    # --- submission -----------------------------------------------------------------

    def _submit(self, job: JobRow, chunks: list[ChunkRow]) -> bool:
        changed = False
        for chunk in chunks:
            if chunk.status is ChunkStatus.CREATING:  # an intent left by a crash: resolve it
                changed |= self._create(job, chunk, len(chunks))
        cap = self._enqueued_cap()
        for chunk in chunks:
            if not chunk.status.queued:
                continue
            if self._halted:
                self.ledger.set_chunk(
                    job.id,
                    chunk.idx,
                    status=ChunkStatus.HALTED,
                    error="not submitted: an earlier chunk failed",
                )
                self._emit(job, chunk, len(chunks), "halted", error="not submitted")
                changed = True
                continue
            in_flight = [
                c
                for c in self.ledger.chunks(job.id)
                if c.mode is ChunkMode.BATCH and c.status.in_flight
            ]
            if len(in_flight) >= self.settings.run.max_simultaneous_batches:
                break
            enqueued = sum(c.tokens for c in in_flight)
            if cap is not None and in_flight and enqueued + chunk.tokens > cap:
                break
            changed |= self._start(job, chunk, len(chunks))
        return changed

    def _enqueued_cap(self) -> int | None:
        model = self.spec.options.model
        return enqueued_cap(self.settings, model, self.ledger.learned_limit(model))

    def _start(self, job: JobRow, chunk: ChunkRow, n: int) -> bool:
        files = JobFiles(self.settings, job.id)
        if chunk.status is ChunkStatus.PENDING:
            path = files.request_file(chunk.request_file)
            ref = self._call(lambda: self.transport.prepare(path), f"upload of {path.name}")
            self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.PREPARED, prepared_ref=ref)
            chunk.prepared_ref, chunk.status = ref, ChunkStatus.PREPARED
        now = int(self.clock.now())
        self.ledger.set_chunk(
            job.id, chunk.idx, status=ChunkStatus.CREATING, attempt=chunk.attempt + 1, intent_at=now
        )
        chunk.attempt += 1
        chunk.intent_at = now
        chunk.status = ChunkStatus.CREATING
        return self._create(job, chunk, n, resolve=False)

    def _tag(self, job: JobRow, chunk: ChunkRow) -> BatchTag:
        return BatchTag(
            job_id=job.id,
            chunk=chunk.idx,
            attempt=chunk.attempt,
            source_name=job.input_path.rsplit("/", 1)[-1],
            requests=chunk.requests,
            intent_at=chunk.intent_at or 0,
        )

    def _create(self, job: JobRow, chunk: ChunkRow, n: int, *, resolve: bool = True) -> bool:
        """Create the chunk's batch exactly once (adopting one a lost answer created).

        ``resolve`` first looks for a batch an earlier attempt may have made: always for
        an intent found in the ledger, never for one this call has just written.
        """
        tag = self._tag(job, chunk)
        files = JobFiles(self.settings, job.id)
        try:
            info = self._find(tag) if resolve else None
            if info is None and self._unanswered.get(chunk.idx) == 1:
                # The last create's answer was lost and the batch is not listed (yet):
                # give the provider one more wait to show it before creating again.
                self._unanswered[chunk.idx] = 2
                self.clock.sleep(min(30.0, self.settings.api.retry_max_wait_seconds))
                info = self._find(tag)
            if info is None:
                info = self._create_once(job, chunk, files, tag)
                if info is None:
                    return False
        except EnqueuedTokenLimit as exc:
            self._learn(exc.limit)
            if self._never_fits(job, chunk, n, exc.limit, None):
                return True
            self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.PREPARED)
            self._emit(job, chunk, n, "waiting", error="enqueued-token limit: will resubmit")
            return False  # a refusal is no progress: let the poll interval back off
        self._unanswered.pop(chunk.idx, None)
        self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.SUBMITTED, batch_id=info.id)
        self.ledger.record_batch(
            info.id, job.id, chunk.idx, info.status, input_ref=chunk.prepared_ref
        )
        reserved = reservation_id(job.id, chunk.idx)
        estimate = Usage(
            input_tokens=chunk.tokens, output_tokens=chunk.requests * self.spec.options.max_tokens
        )
        self.ledger.commit_usage(self._usage_event(job, info.id, estimate))
        self.ledger.release_usage(reserved)
        self._emit(job, chunk, n, info.status, batch_id=info.id, total=chunk.requests)
        return True

    def _create_once(
        self, job: JobRow, chunk: ChunkRow, files: JobFiles, tag: BatchTag
    ) -> BatchInfo | None:
        """One ``create``; None when its answer was lost (the batch may exist)."""
        path = files.request_file(chunk.request_file)
        self.policy.first_call()
        try:
            info = self.transport.create(path, chunk.prepared_ref, job.endpoint, tag)
        except TransientApiError as exc:
            self.policy.check_reachable(exc)
            failures = self._create_failures.get(chunk.idx, 0) + 1
            self._create_failures[chunk.idx] = failures
            if failures > self.settings.api.max_retries:
                raise ProviderError(
                    f"Giving up after {failures} attempts to create the batch of chunk "
                    f"{chunk.idx + 1}: {exc.message}",
                    hint="Nothing is lost and nothing is paid twice: run the same command "
                    "again (or batchgrader jobs resume) once the service answers.",
                ) from None
            self._unanswered[chunk.idx] = 1
            log.warning(
                "%s (attempt %d of %d); looking for the batch before creating again.",
                exc.message,
                failures,
                self.settings.api.max_retries + 1,
            )
            self.clock.sleep(self.policy.backoff(failures, exc))
            return None
        self.policy.contacted = True
        self._create_failures.pop(chunk.idx, None)
        return info

    def _find(self, tag: BatchTag) -> BatchInfo | None:
        """The batch a lost create made for ``tag``, if one is found without doubt."""
        known = self.ledger.batch_ids()
        found = self._call(lambda: self.transport.candidates(tag, known), "batch list")
        if not found:
            return None
        if len(found) == 1 or self.transport.exact_find:
            return found[0]
        listing = ", ".join(f"{b.id} ({b.total} requests, created {b.created_at})" for b in found)
        raise AmbiguousBatch(
            f"Chunk {tag.chunk + 1} of job {tag.job_id}: its create answer was lost and "
            f"{len(found)} batches could be it: {listing}. Nothing more was created.",
            hint=f"batchgrader jobs adopt {tag.job_id} --chunk {tag.chunk + 1} --batch ID "
            "adopts the right one (cancel the others at the provider).",
        )

    def _learn(self, limit: int | None) -> None:
        if limit is not None:
            self.ledger.learn_limit(self.spec.options.model, limit)
            log.info("Enqueued-token limit of %s: %d tokens", self.spec.options.model, limit)

    def _never_fits(
        self, job: JobRow, chunk: ChunkRow, n: int, limit: int | None, batch_id: str | None
    ) -> bool:
        """Fail a chunk bigger than the whole enqueued-token limit (resubmitting cannot help)."""
        if limit is None or chunk.tokens <= limit:
            return False
        error = (
            f"chunk of {chunk.tokens:,} tokens exceeds the enqueued-token limit of {limit:,} "
            f"for {self.spec.options.model}: it can never run (lower chunking.split_token_limit "
            "and grade again: rows already answered are not paid for again)"
        )
        self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.FAILED, error=error)
        self.ledger.release_usage(reservation_id(job.id, chunk.idx))
        self._emit(job, chunk, n, "failed", batch_id=batch_id, error=error)
        return True

    # --- polling and collection -----------------------------------------------------

    def _poll(
        self, job: JobRow, chunk: ChunkRow, n: int, last_seen: dict[int, tuple[str, int, int]]
    ) -> bool:
        assert chunk.batch_id is not None
        batch_id = chunk.batch_id
        info = self._call(lambda: self.transport.retrieve(batch_id), f"batch {batch_id}")
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
                self._emit(
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
        self._collect(job, chunk, n, info)
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

    def _collect(self, job: JobRow, chunk: ChunkRow, n: int, info: BatchInfo) -> None:
        if info.state is BatchState.FAILED:
            self._collect_failed(job, chunk, n, info)
            return
        files = JobFiles(self.settings, job.id)
        files.results.mkdir(parents=True, exist_ok=True, mode=0o700)
        stem = files.result_stem(chunk.request_file)
        try:
            paths = (
                self._call(lambda: self.transport.download(info, files.results, stem), "download")
                if info.results
                else []
            )
        except FileMissing:
            raise FileMissing(
                f"The results of batch {info.id} are no longer available at the provider: "
                "they cannot be downloaded.",
                hint="Results are kept for a limited time after a batch ends (OpenAI: 30 "
                "days). Grade again with --force to pay for these rows again.",
            ) from None
        expected = files.request_rows(chunk.request_file, self.spec.codec)
        stuck = chunk.idx in self._stuck or (chunk.error or "").startswith(STUCK.code)
        not_run = STUCK if stuck else _NOT_RUN.get(info.state, _NOT_RUN[BatchState.COMPLETED])
        results = parse_result_files(
            paths,
            expected,
            self.spec.codec,
            self.spec.prompt,
            self.spec.options.answer_mode,
            not_run,
        )
        if results.malformed_lines and self._redownloads.get(chunk.idx, 0) < MAX_REDOWNLOADS:
            # A corrupted download looks like malformed lines: fetch the files again
            # before accepting them (nothing is recorded until the files are kept).
            self._redownloads[chunk.idx] = self._redownloads.get(chunk.idx, 0) + 1
            for path in paths:
                path.unlink(missing_ok=True)
            log.warning(
                "Chunk %d: %d malformed lines in the downloaded results; downloading again.",
                chunk.idx + 1,
                results.malformed_lines,
            )
            return
        if results.malformed_lines:
            log.warning(
                "Chunk %d: %d result lines could not be attributed to a row and were ignored.",
                chunk.idx + 1,
                results.malformed_lines,
            )
        if results.duplicates:
            log.warning(
                "Chunk %d: %d rows were answered more than once, differently; they are marked "
                "duplicate_result.",
                chunk.idx + 1,
                results.duplicates,
            )
        usage = self._reconciled_usage(chunk, info, results)
        event = self._usage_event(
            job,
            info.id,
            usage,
            completed=results.succeeded,
            failed=chunk.requests - results.succeeded,
        )
        result_file = files.results / f"{stem}.parquet"
        results.write(result_file)
        self.ledger.record_usage(event)
        error = None
        status = ChunkStatus.DONE
        if results.succeeded == 0:
            code, count = (
                results.error_codes.most_common(1)[0] if results.error_codes else (info.status, 0)
            )
            error = (
                f"{info.status} with no successful request; most common error {code} "
                f"({count} of {chunk.requests})"
            )
            status = ChunkStatus.FAILED
        elif info.state is not BatchState.COMPLETED:
            error = f"batch {info.status}: {chunk.requests - results.succeeded} rows not graded"
        self.ledger.set_chunk(
            job.id, chunk.idx, status=status, result_file=result_file.name, error=error
        )
        if self.settings.run.delete_remote_files and self.transport.delete(
            info, chunk.prepared_ref
        ):
            self.ledger.mark_deleted(info.id)
        self._emit(
            job,
            chunk,
            n,
            info.status if status is ChunkStatus.DONE else "failed",
            batch_id=info.id,
            completed=results.succeeded,
            failed=chunk.requests - results.succeeded,
            total=chunk.requests,
            tokens=usage.total_tokens,
            cost=str(event.cost) if event.cost is not None else None,
            error=error,
        )

    def _reconciled_usage(self, chunk: ChunkRow, info: BatchInfo, results: ChunkResults) -> Usage:
        """What the batch cost: the provider's own total where it reports one.

        Without it, the result lines' sum; rows the provider counts as completed whose
        lines are missing are added at their worst case (spend is never under-recorded).
        """
        lines = results.usage
        reported = info.usage
        if reported is not None:
            limit = chunk.requests * (self.spec.context_window or 10**7)
            if reported.total_tokens <= limit:
                if reported != lines:
                    log.info(
                        "Batch %s: the provider reports %d tokens, its lines %d; the provider's "
                        "figure is recorded.",
                        info.id,
                        reported.total_tokens,
                        lines.total_tokens,
                    )
                return reported
            log.warning(
                "Batch %s reports an impossible usage (%d tokens): its lines are used.",
                info.id,
                reported.total_tokens,
            )
        answered = sum(1 for u in results.usages if u.total_tokens)
        missing = max(0, info.completed - answered)
        if missing:
            per_row = -(-chunk.tokens // max(chunk.requests, 1))
            extra = Usage(
                input_tokens=missing * per_row,
                output_tokens=missing * self.spec.options.max_tokens,
            )
            log.warning(
                "Batch %s counts %d completed requests whose usage is missing from its files: "
                "recorded at their worst case.",
                info.id,
                missing,
            )
            return lines + extra
        return lines

    def _collect_failed(self, job: JobRow, chunk: ChunkRow, n: int, info: BatchInfo) -> None:
        self.ledger.release_usage(info.id)
        limit_errors = [e for e in info.errors if e.code == TOKEN_LIMIT]
        if limit_errors:
            limit = limit_errors[0].limit
            self._learn(limit)
            if self._never_fits(job, chunk, n, limit, info.id):
                return
            self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.PREPARED, batch_id=None)
            self._emit(
                job, chunk, n, "waiting", batch_id=info.id, error="enqueued-token limit reached"
            )
            return
        if any(e.code == INPUT_MISSING for e in info.errors) and chunk.attempt < (
            MAX_INPUT_RESUBMITS
        ):
            # The batch was accepted, then failed: its input file could not be found.
            # Upload it again and resubmit (a bounded number of times).
            log.warning("Batch %s failed: its input file was not found; resubmitting.", info.id)
            self.ledger.set_chunk(
                job.id, chunk.idx, status=ChunkStatus.PENDING, batch_id=None, prepared_ref=None
            )
            self._emit(job, chunk, n, "waiting", batch_id=info.id, error="input file missing")
            return
        first = info.errors[0] if info.errors else None
        detail = (
            f"{first.code}: {first.message}" + (f" (line {first.line})" if first.line else "")
            if first
            else "no reason given"
        )
        more = f" and {len(info.errors) - 1} more" if len(info.errors) > 1 else ""
        error = f"batch failed validation: {detail}{more}"
        self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.FAILED, error=error)
        if self.settings.run.delete_remote_files and self.transport.delete(
            info, chunk.prepared_ref
        ):
            self.ledger.mark_deleted(info.id)
        self._emit(
            job,
            chunk,
            n,
            "failed",
            batch_id=info.id,
            error=error,
            total=chunk.requests,
            failed=chunk.requests,
        )

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
        return self._call(lambda: self.transport.cancel(batch_id), f"cancel of {batch_id}")

    # --- usage ----------------------------------------------------------------------

    def _usage_event(
        self,
        job: JobRow,
        batch_id: str,
        usage: Usage,
        *,
        completed: int | None = None,
        failed: int = 0,
    ) -> UsageEvent:
        """A usage event: an estimate when ``completed`` is None, else the actual."""
        price = self.spec.price
        return UsageEvent(
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
            batch_id=batch_id,
            job_id=job.id,
            source_file=job.input_path,
            api_key_prefix=self.identity.api_key_prefix,
            base_url_host=self.identity.base_url_host,
            model=price.model if price else self.spec.options.model,
            endpoint=job.endpoint,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_tokens=usage.total_tokens,
            cost=cost(price, usage, tier=Tier.BATCH) if price else None,
            committed=completed is None,
            requests_completed=completed or 0,
            requests_failed=failed,
            cache_write_tokens=usage.cache_write_tokens,
            provider=self.spec.provider.name,
            tier=Tier.BATCH,
            executor="batch",
        )

    def _emit(
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
            job_requests=self._job_requests,
        )
        log.info("chunk %d/%d %s %s", chunk.idx + 1, n, status, error or batch_id or "")
        self.on_event(event)
