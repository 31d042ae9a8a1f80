"""Collecting a finished batch: its results stored, its usage reconciled and recorded.

The batch's output and error files are downloaded and parsed by ``custom_id`` (a
download with malformed lines is fetched again, a bounded number of times), the rows
the batch never ran get the error of why (expired, cancelled, stuck), and the chunk's
results file is written before its actual usage replaces the estimate committed at
``create``. That usage is the provider's own figure where it reports one, else the
result lines' sum, with rows it counts as completed but whose lines are missing added
at their worst case: spend is never under-recorded.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from batchgrader.errors import FileMissing
from batchgrader.execution.events import BatchEvents, Identity
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.results import ChunkResults, parse_result_files
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.ledger.records import ChunkRow, ChunkStatus, JobRow, UsageEvent
from batchgrader.ledger.store import Ledger
from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import BatchInfo, BatchState, BatchTransport, RowError
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: Times a chunk's results are downloaded again when they hold malformed lines.
MAX_REDOWNLOADS = 3
_NOT_RUN = {
    BatchState.COMPLETED: RowError("not_run", "missing from the batch's results"),
    BatchState.EXPIRED: RowError("batch_expired", "not run before the batch expired"),
    BatchState.CANCELLED: RowError("batch_cancelled", "not run before the batch was cancelled"),
}
STUCK = RowError("batch_stuck", "the batch did not finish within run.max_batch_wait_seconds")


class BatchCollector:
    """Collects the batch executor's finished batches (those that did not fail)."""

    def __init__(
        self,
        transport: BatchTransport,
        ledger: Ledger,
        settings: Settings,
        spec: RequestSpec,
        identity: Identity,
        *,
        policy: RetryPolicy,
        events: BatchEvents,
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self.settings = settings
        self.spec = spec
        self.identity = identity
        self.policy = policy
        self.events = events
        self._redownloads: dict[int, int] = {}  # chunk -> downloads discarded as corrupt

    def collect(
        self, job: JobRow, chunk: ChunkRow, n: int, info: BatchInfo, *, stuck: bool
    ) -> None:
        """Store the chunk's results and record its usage; ``stuck``: its batch was
        cancelled as stuck by this run (its rows not run are ``batch_stuck``)."""
        files = JobFiles(self.settings, job.id)
        files.results.mkdir(parents=True, exist_ok=True, mode=0o700)
        stem = files.result_stem(chunk.request_file)
        try:
            paths = (
                self.policy.call(
                    lambda: self.transport.download(info, files.results, stem), "download"
                )
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
        stuck = stuck or (chunk.error or "").startswith(STUCK.code)
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
        event = usage_event(
            self.spec,
            self.identity,
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
        self.events.emit(
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


def usage_event(
    spec: RequestSpec,
    identity: Identity,
    job: JobRow,
    batch_id: str,
    usage: Usage,
    *,
    completed: int | None = None,
    failed: int = 0,
) -> UsageEvent:
    """A batch's usage event: an estimate when ``completed`` is None, else the actual."""
    price = spec.price
    return UsageEvent(
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        batch_id=batch_id,
        job_id=job.id,
        source_file=job.input_path,
        api_key_prefix=identity.api_key_prefix,
        base_url_host=identity.base_url_host,
        model=price.model if price else spec.options.model,
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
        provider=spec.provider.name,
        tier=Tier.BATCH,
        executor="batch",
    )
