"""The job manager: submit chunks under the caps, poll, collect, never pay twice.

One loop per job, single-threaded, driven by an injected clock. Each chunk moves
through ``pending -> uploaded -> creating -> submitted -> done | failed`` and every
move is written to the ledger before the next step depends on it: the file id right
after upload, an intent before ``create``, the batch id right after it returns. A
``create`` whose answer is lost is resolved by finding the batch by its metadata
before creating again, so a batch is created at most once per chunk attempt.

The runner emits ``ChunkEvent``s and knows nothing about screens.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from batchgrader.data.files import atomic_path
from batchgrader.errors import (
    EnqueuedTokenLimit,
    FileMissing,
    ProviderError,
    QuotaExhausted,
    TransientApiError,
)
from batchgrader.execution import jobs
from batchgrader.ledger.store import ChunkRow, JobRow, Ledger, UsageEvent
from batchgrader.money.pricing import Usage, cost
from batchgrader.prompting.answers import parse_result_files
from batchgrader.prompting.spec import RequestSpec
from batchgrader.providers.base import BatchAPI, BatchInfo, is_enqueued_limit, parse_enqueued_limit
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

FINISHED = frozenset({"done", "failed", "halted", "retried"})
IN_FLIGHT = frozenset({"creating", "submitted"})
MAX_TRANSIENT_FAILURES = 8
#: Times a chunk's results are downloaded again when they hold malformed lines.
MAX_REDOWNLOADS = 3
_NOT_RUN = {
    "completed": "not_run: missing from the batch's output and error files",
    "expired": "batch_expired: not run before the batch expired",
    "cancelled": "batch_cancelled: not run before the batch was cancelled",
}


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


@dataclass(frozen=True)
class Identity:
    """Who spends: recorded with every usage event (never the whole key)."""

    api_key_prefix: str
    base_url_host: str


class Runner:
    """Runs one job's chunks to the end (or submits them, with ``detach``)."""

    def __init__(
        self,
        client: BatchAPI,
        ledger: Ledger,
        settings: Settings,
        spec: RequestSpec,
        identity: Identity,
        *,
        on_event: Callable[[ChunkEvent], None] = lambda e: None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.settings = settings
        self.spec = spec
        self.identity = identity
        self.on_event = on_event
        self.clock = clock or SystemClock()
        self._halted = False
        self._failures = 0
        self._unanswered: dict[int, int] = {}  # chunk -> lost create answers seen
        self._redownloads: dict[int, int] = {}  # chunk -> downloads discarded as corrupt

    # --- the loop -------------------------------------------------------------------

    def run(self, job: JobRow, *, detach: bool = False) -> list[ChunkRow]:
        """Drive the job until every chunk is finished (or, detached, submitted)."""
        run = self.settings.run
        interval = run.poll_interval_seconds
        last_seen: dict[int, tuple[str, int, int]] = {}
        while True:
            chunks = self.ledger.chunks(job.id)
            self._halted = self._halted or (
                run.halt_on_chunk_failure and any(c.status == "failed" for c in chunks)
            )
            changed = self._submit(job, chunks)
            if detach:  # submitted what the caps allow; the rest stays queued in the ledger
                return self.ledger.chunks(job.id)
            for chunk in self.ledger.chunks(job.id):
                if chunk.status == "submitted":
                    changed |= self._poll(job, chunk, len(chunks), last_seen)
            before = {c.idx: c.status for c in chunks}
            chunks = self.ledger.chunks(job.id)
            if all(c.status in FINISHED for c in chunks):
                return chunks
            freed = any(c.status in FINISHED and before.get(c.idx) not in FINISHED for c in chunks)
            if freed and any(c.status in ("pending", "uploaded") for c in chunks):
                interval = run.poll_interval_seconds
                continue  # a slot just freed up: submit the next chunk without waiting
            interval = (
                run.poll_interval_seconds
                if changed
                else min(interval * 1.5, run.poll_max_interval_seconds)
            )
            self.clock.sleep(interval * random.uniform(0.9, 1.1))

    # --- submission -----------------------------------------------------------------

    def _submit(self, job: JobRow, chunks: list[ChunkRow]) -> bool:
        changed = False
        for chunk in chunks:
            if chunk.status == "creating":  # an intent left by a crash: resolve it first
                changed |= self._create(job, chunk, len(chunks))
        cap = self._enqueued_cap()
        for chunk in chunks:
            if chunk.status not in ("pending", "uploaded"):
                continue
            if self._halted:
                self.ledger.set_chunk(
                    job.id,
                    chunk.idx,
                    status="halted",
                    error="not submitted: an earlier chunk failed",
                )
                self._emit(job, chunk, len(chunks), "halted", error="not submitted")
                changed = True
                continue
            in_flight = [c for c in self.ledger.chunks(job.id) if c.status in IN_FLIGHT]
            if len(in_flight) >= self.settings.run.max_simultaneous_batches:
                break
            enqueued = sum(c.tokens for c in in_flight)
            if cap is not None and in_flight and enqueued + chunk.tokens > cap:
                break
            changed |= self._start(job, chunk, len(chunks))
        return changed

    def _enqueued_cap(self) -> int | None:
        model = self.spec.options.model
        caps = [
            c
            for c in (
                self.settings.run.max_enqueued_tokens.get(model),
                self.ledger.learned_limit(model),
            )
            if c is not None
        ]
        return min(caps) if caps else None

    def _start(self, job: JobRow, chunk: ChunkRow, n: int) -> bool:
        if chunk.status == "pending" or chunk.input_file_id is None:
            path = jobs.request_path(self.settings, job.id, chunk.request_file)
            try:
                file_id = self.client.upload(path)
            except TransientApiError as exc:
                return self._transient(exc)
            self.ledger.set_chunk(job.id, chunk.idx, status="uploaded", input_file_id=file_id)
            chunk.input_file_id, chunk.status = file_id, "uploaded"
        self.ledger.set_chunk(
            job.id,
            chunk.idx,
            status="creating",
            attempt=chunk.attempt + 1,
            intent_at=int(self.clock.now()),
        )
        chunk.attempt += 1
        chunk.intent_at = int(self.clock.now())
        return self._create(job, chunk, n, resolve=False)

    def _metadata(self, job: JobRow, chunk: ChunkRow) -> dict[str, str]:
        return {
            "batchgrader_job": job.id,
            "chunk": str(chunk.idx),
            "attempt": str(chunk.attempt),
            "source_file": Path(job.input_path).name[:500],
        }

    def _create(self, job: JobRow, chunk: ChunkRow, n: int, *, resolve: bool = True) -> bool:
        """Create the chunk's batch exactly once (adopting one a lost answer created).

        ``resolve`` first looks for a batch an earlier attempt may have made: always for
        an intent found in the ledger, never for one this call has just written.
        """
        meta = self._metadata(job, chunk)
        since = (chunk.intent_at or 0) - 300
        assert chunk.input_file_id is not None
        try:
            info = self.client.find(meta, since) if resolve else None
            if info is None and self._unanswered.get(chunk.idx) == 1:
                # The last create's answer was lost and the batch is not listed (yet):
                # give the provider one more backoff to show it before creating again.
                self._unanswered[chunk.idx] = 2
                raise TransientApiError(
                    f"chunk {chunk.idx + 1}: no batch listed after a lost create answer; "
                    "looking once more before creating"
                )
            if info is None:
                try:
                    info = self.client.create(chunk.input_file_id, job.endpoint, meta)
                except TransientApiError:
                    self._unanswered[chunk.idx] = 1
                    raise
        except EnqueuedTokenLimit as exc:
            self._learn(exc.limit)
            if self._never_fits(job, chunk, n, exc.limit, None):
                return True
            self.ledger.set_chunk(job.id, chunk.idx, status="uploaded")
            self._emit(job, chunk, n, "waiting", error="enqueued-token limit: will resubmit")
            return False  # a refusal is no progress: let the poll interval back off
        except TransientApiError as exc:
            return self._transient(exc)
        except ProviderError as exc:
            if "cannot find file" in exc.message.lower():
                return self._transient(exc)
            raise
        self._failures = 0
        self._unanswered.pop(chunk.idx, None)
        self.ledger.set_chunk(job.id, chunk.idx, status="submitted", batch_id=info.id)
        self.ledger.record_batch(
            info.id, job.id, chunk.idx, info.status, input_file_id=chunk.input_file_id
        )
        estimate = Usage(
            input_tokens=chunk.tokens, output_tokens=chunk.requests * self.spec.options.max_tokens
        )
        self.ledger.commit_usage(self._usage_event(job, info.id, estimate))
        self._emit(job, chunk, n, info.status, batch_id=info.id, total=chunk.requests)
        return True

    def _transient(self, exc: ProviderError) -> bool:
        self._failures += 1
        log.warning("%s (attempt %d of %d)", exc.message, self._failures, MAX_TRANSIENT_FAILURES)
        if self._failures >= MAX_TRANSIENT_FAILURES:
            raise ProviderError(
                f"Giving up after {self._failures} failed calls: {exc.message}",
                hint="Nothing is lost: run the same command again (or batchgrader jobs "
                "resume) once the service answers.",
            ) from None
        self.clock.sleep(min(2.0**self._failures, 60.0) * random.uniform(0.5, 1.0))
        return False

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
            f"for {self.spec.options.model}: it can never run (grade again with --force to "
            "plan smaller chunks)"
        )
        self.ledger.set_chunk(job.id, chunk.idx, status="failed", error=error)
        self._emit(job, chunk, n, "failed", batch_id=batch_id, error=error)
        return True

    # --- polling and collection -----------------------------------------------------

    def _poll(
        self, job: JobRow, chunk: ChunkRow, n: int, last_seen: dict[int, tuple[str, int, int]]
    ) -> bool:
        assert chunk.batch_id is not None
        try:
            info = self.client.retrieve(chunk.batch_id)
        except TransientApiError as exc:
            return self._transient(exc)
        self._failures = 0
        state = (info.status, info.completed, info.failed)
        changed = last_seen.get(chunk.idx) != state
        last_seen[chunk.idx] = state
        if changed:
            self.ledger.record_batch(
                info.id,
                job.id,
                chunk.idx,
                info.status,
                input_file_id=info.input_file_id,
                output_file_id=info.output_file_id,
                error_file_id=info.error_file_id,
                total=info.total,
                completed=info.completed,
                failed=info.failed,
            )
            if not info.terminal:
                self._emit(
                    job,
                    chunk,
                    n,
                    info.status,
                    batch_id=info.id,
                    completed=info.completed,
                    failed=info.failed,
                    total=info.total or chunk.requests,
                )
        if info.terminal:
            self._collect(job, chunk, n, info)
        return changed

    def _collect(self, job: JobRow, chunk: ChunkRow, n: int, info: BatchInfo) -> None:
        if info.status == "failed":
            self._collect_failed(job, chunk, n, info)
            return
        folder = jobs.results_dir(self.settings, job.id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = []
        for kind, file_id in (("output", info.output_file_id), ("errors", info.error_file_id)):
            if file_id is None:
                continue
            dest = folder / f"chunk-{chunk.idx:04d}.{kind}.jsonl"
            if not dest.exists():
                self._download(file_id, dest, info)
            files.append(dest)
        expected = jobs.request_rows(self.settings, job.id, chunk.request_file)
        results = parse_result_files(
            files,
            expected,
            self.spec.prompt,
            self.spec.options.structured,
            _NOT_RUN.get(info.status, "not_run: missing from the batch's files"),
        )
        if results.malformed_lines and self._redownloads.get(chunk.idx, 0) < MAX_REDOWNLOADS:
            # A corrupted download looks like malformed lines: fetch the files again
            # before accepting them (nothing is recorded until the files are kept).
            self._redownloads[chunk.idx] = self._redownloads.get(chunk.idx, 0) + 1
            for path in files:
                path.unlink(missing_ok=True)
            self._transient(
                TransientApiError(
                    f"chunk {chunk.idx + 1}: {results.malformed_lines} malformed lines in the "
                    "downloaded results; downloading again"
                )
            )
            return
        if results.malformed_lines:
            log.warning(
                "Chunk %d: %d malformed output lines were ignored (their rows are marked).",
                chunk.idx + 1,
                results.malformed_lines,
            )
        event = self._usage_event(
            job,
            info.id,
            results.usage,
            completed=results.succeeded,
            failed=chunk.requests - results.succeeded,
        )
        self.ledger.record_usage(event)
        usage_cost = event.cost
        result_file = folder / f"chunk-{chunk.idx:04d}.parquet"
        with atomic_path(result_file) as tmp:  # a crash never leaves half a result file
            results.frame().write_parquet(tmp)
            os.chmod(tmp, 0o600)
        error = None
        status = "done"
        if results.succeeded == 0:
            code, count = (
                results.error_codes.most_common(1)[0] if results.error_codes else (info.status, 0)
            )
            error = (
                f"{info.status} with no successful request; most common error {code} "
                f"({count} of {chunk.requests})"
            )
            status = "failed"
        elif info.status != "completed":
            error = f"batch {info.status}: {chunk.requests - results.succeeded} rows not graded"
        self.ledger.set_chunk(
            job.id, chunk.idx, status=status, result_file=result_file.name, error=error
        )
        self._emit(
            job,
            chunk,
            n,
            info.status if status == "done" else "failed",
            batch_id=info.id,
            completed=results.succeeded,
            failed=chunk.requests - results.succeeded,
            total=chunk.requests,
            tokens=results.usage.total_tokens,
            cost=str(usage_cost) if usage_cost is not None else None,
            error=error,
        )

    def _collect_failed(self, job: JobRow, chunk: ChunkRow, n: int, info: BatchInfo) -> None:
        self.ledger.release_usage(info.id)
        limit_errors = [e for e in info.errors if is_enqueued_limit(e.code, e.message)]
        if limit_errors:
            limit = parse_enqueued_limit(limit_errors[0].message)
            self._learn(limit)
            if self._never_fits(job, chunk, n, limit, info.id):
                return
            self.ledger.set_chunk(job.id, chunk.idx, status="uploaded", batch_id=None)
            self._emit(
                job,
                chunk,
                n,
                "waiting",
                batch_id=info.id,
                error="enqueued-token limit reached: will resubmit",
            )
            return
        first = info.errors[0] if info.errors else None
        detail = (
            f"{first.code}: {first.message}" + (f" (line {first.line})" if first.line else "")
            if first
            else "no reason given"
        )
        more = f" and {len(info.errors) - 1} more" if len(info.errors) > 1 else ""
        error = f"batch failed validation: {detail}{more}"
        self.ledger.set_chunk(job.id, chunk.idx, status="failed", error=error)
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

    def _download(self, file_id: str, dest: Path, info: BatchInfo) -> None:
        for attempt in range(1, MAX_TRANSIENT_FAILURES + 1):
            try:
                self.client.download(file_id, dest)
                return
            except FileMissing:
                # One more try (a file may lag its batch); a second 404 is final.
                if attempt >= 2:
                    raise FileMissing(
                        f"File {file_id} of batch {info.id} is no longer available at the "
                        "provider (404): its results cannot be downloaded.",
                        hint="Result files are deleted 30 days after a batch ends. "
                        "Grade the file again with --force to pay for these rows again.",
                    ) from None
            except TransientApiError as exc:
                if attempt == MAX_TRANSIENT_FAILURES:
                    raise
                log.warning("%s (attempt %d)", exc.message, attempt)
            self.clock.sleep(min(2.0**attempt, 30.0))

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
            cost=cost(price, usage) if price else None,
            committed=completed is None,
            requests_completed=completed or 0,
            requests_failed=failed,
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
        )
        log.info("chunk %d/%d %s %s", chunk.idx + 1, n, status, error or batch_id or "")
        self.on_event(event)


__all__ = ["ChunkEvent", "Clock", "Identity", "QuotaExhausted", "Runner", "SystemClock"]
