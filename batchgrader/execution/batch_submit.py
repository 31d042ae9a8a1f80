"""Submitting a job's batch chunks: under the caps, each batch created at most once.

A chunk moves ``pending -> prepared -> creating -> submitted``, and every move is
written to the ledger before the next step depends on it: the prepared input right
after it is sent, an intent before ``create``, the batch id right after it returns. A
``create`` whose answer is lost is resolved by looking for the batch before creating
again (by its metadata, or, where a provider has none, by its size and time), so a
batch is created at most once per chunk attempt.

An enqueued-token refusal teaches the model's limit and the chunk waits for room; a
batch that failed is resubmitted when that limit or a missing input file explains it,
and fails its chunk otherwise.
"""

from __future__ import annotations

import logging

from batchgrader.errors import (
    AmbiguousBatch,
    BatchApiMissing,
    EnqueuedTokenLimit,
    ProviderError,
    TransientApiError,
)
from batchgrader.execution.batch_collect import usage_event
from batchgrader.execution.events import BatchEvents, Clock, Identity
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow
from batchgrader.ledger.store import Ledger
from batchgrader.money.budget import reservation_id
from batchgrader.money.pricing import Usage
from batchgrader.planning.plans import enqueued_cap
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import (
    INPUT_MISSING,
    TOKEN_LIMIT,
    BatchInfo,
    BatchTag,
    BatchTransport,
)
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: Times a chunk is resubmitted after its batch failed because its input went missing.
MAX_INPUT_RESUBMITS = 3


class BatchSubmitter:
    """Submits the batch executor's queued chunks and resolves their failed batches."""

    def __init__(
        self,
        transport: BatchTransport,
        ledger: Ledger,
        settings: Settings,
        spec: RequestSpec,
        identity: Identity,
        *,
        clock: Clock,
        policy: RetryPolicy,
        events: BatchEvents,
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self.settings = settings
        self.spec = spec
        self.identity = identity
        self.clock = clock
        self.policy = policy
        self.events = events
        self._unanswered: dict[int, int] = {}  # chunk -> lost create answers seen
        self._create_failures: dict[int, int] = {}

    def submit(self, job: JobRow, chunks: list[ChunkRow], *, halted: bool) -> bool:
        """Resolve intents a crash left, then submit queued chunks while the caps allow
        (``halted``: an earlier chunk failed, so queued ones are halted instead)."""
        changed = False
        for chunk in chunks:
            if chunk.status is ChunkStatus.CREATING:  # an intent left by a crash: resolve it
                changed |= self._create(job, chunk, len(chunks))
        cap = self._enqueued_cap()
        for chunk in chunks:
            if not chunk.status.queued:
                continue
            if halted:
                self.ledger.set_chunk(
                    job.id,
                    chunk.idx,
                    status=ChunkStatus.HALTED,
                    error="not submitted: an earlier chunk failed",
                )
                self.events.emit(job, chunk, len(chunks), "halted", error="not submitted")
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
            ref = self.policy.call(lambda: self.transport.prepare(path), f"upload of {path.name}")
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
        except BatchApiMissing:
            # Answered: the server has no Batch API, so no batch was made. The intent is
            # void (a later run must not look for the batch with a list the server lacks).
            self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.PREPARED, intent_at=None)
            raise
        except EnqueuedTokenLimit as exc:
            self._learn(exc.limit)
            if self._never_fits(job, chunk, n, exc.limit, None):
                return True
            self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.PREPARED)
            self.events.emit(job, chunk, n, "waiting", error="enqueued-token limit: will resubmit")
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
        self.ledger.commit_usage(usage_event(self.spec, self.identity, job, info.id, estimate))
        self.ledger.release_usage(reserved)
        self.events.emit(job, chunk, n, info.status, batch_id=info.id, total=chunk.requests)
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
        found = self.policy.call(lambda: self.transport.candidates(tag, known), "batch list")
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
        self.events.emit(job, chunk, n, "failed", batch_id=batch_id, error=error)
        return True

    # --- failed batches -------------------------------------------------------------

    def batch_failed(self, job: JobRow, chunk: ChunkRow, n: int, info: BatchInfo) -> None:
        """A batch that failed: resubmitted when the enqueued-token limit or a missing
        input file explains it, else its chunk fails with the batch's first error."""
        self.ledger.release_usage(info.id)
        limit_errors = [e for e in info.errors if e.code == TOKEN_LIMIT]
        if limit_errors:
            limit = limit_errors[0].limit
            self._learn(limit)
            if self._never_fits(job, chunk, n, limit, info.id):
                return
            self.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.PREPARED, batch_id=None)
            self.events.emit(
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
            self.events.emit(job, chunk, n, "waiting", batch_id=info.id, error="input file missing")
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
        self.events.emit(
            job,
            chunk,
            n,
            "failed",
            batch_id=info.id,
            error=error,
            total=chunk.requests,
            failed=chunk.requests,
        )
