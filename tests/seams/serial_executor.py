"""``SerialExecutor``: a second row executor, for the suite only.

It answers a job's direct chunks one row at a time, in input order, with the provider's
direct transport, and keeps the executor contract (``execution/executor.py``): each final
answer is durable in the chunk's answers file before the next row is sent, the chunk's
usage event (``answers.usage_id``) covers every answer in that file, and
``answers.finish_chunk`` writes its results. Nothing in ``batchgrader/`` knows it: a test
plugs it in through ``Session.direct_executor``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from batchgrader.execution.answers import (
    answer_of,
    answer_record,
    answers_file,
    direct_tier,
    finish_chunk,
    pending,
    read_answers,
    record_line,
    usage_id,
)
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.session import Session
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, UsageEvent
from batchgrader.money.pricing import Usage, cost
from batchgrader.providers.base import Answer


class SerialExecutor:
    mode = ChunkMode.DIRECT

    def __init__(self, session: Session, *, stop_after: int | None = None) -> None:
        self.s = session
        self.spent = session.spent
        #: custom_ids sent, in order.
        self.sent: list[str] = []
        #: Interrupt (as Ctrl-C would) after this many rows sent.
        self.stop_after = stop_after

    def run(self, job: JobRow, *, only: set[int] | None = None) -> list[ChunkRow]:
        s = self.s
        for chunk in s.ledger.chunks(job.id):
            if chunk.mode is not ChunkMode.DIRECT or chunk.status.finished:
                continue
            if only is None or chunk.idx in only:
                self._chunk(job, chunk)
        return s.ledger.chunks(job.id)

    def _chunk(self, job: JobRow, chunk: ChunkRow) -> None:
        s = self.s
        files = JobFiles(s.settings, job.id)
        files.results.mkdir(parents=True, exist_ok=True)
        path = answers_file(files, chunk)
        answered = read_answers(path)
        before = self._cost(path)
        s.ledger.set_chunk(job.id, chunk.idx, status=ChunkStatus.SUBMITTED)
        transport = s.spec.provider.direct_transport(timeout=s.settings.api.timeout_seconds)
        try:
            with path.open("ab") as out:
                for cid, body in pending(files, chunk, s.spec, set(answered)):
                    if self.stop_after is not None and len(self.sent) >= self.stop_after:
                        raise KeyboardInterrupt
                    reply = asyncio.run(transport.send(s.spec.options.endpoint, body))
                    out.write(record_line(answer_record(cid, reply)))
                    out.flush()
                    os.fsync(out.fileno())
                    self.sent.append(cid)
        finally:
            asyncio.run(transport.aclose())
            self.spent += self._record_usage(job, chunk, path) - before
        finish_chunk(s.ledger, s.settings, s.spec, job, chunk)

    def _answers(self, path: Path) -> list[Answer]:
        return [answer_of(record, self.s.spec) for record in read_answers(path).values()]

    def _cost(self, path: Path) -> Decimal:
        price = self.s.spec.price
        usage = sum((a.usage for a in self._answers(path)), Usage())
        return cost(price, usage, tier=direct_tier(self.s.spec)) if price else Decimal(0)

    def _record_usage(self, job: JobRow, chunk: ChunkRow, path: Path) -> Decimal:
        """The chunk's usage event, over every answer in its file; returns its cost."""
        s = self.s
        answers = self._answers(path)
        usage = sum((a.usage for a in answers), Usage())
        tier = direct_tier(s.spec)
        price = s.spec.price
        spent = cost(price, usage, tier=tier) if price else None
        s.ledger.upsert_usage(
            UsageEvent(
                timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
                batch_id=usage_id(job.id, chunk.idx),
                job_id=job.id,
                source_file=job.input_path,
                api_key_prefix=s.identity.api_key_prefix,
                base_url_host=s.identity.base_url_host,
                model=price.model if price else s.spec.options.model,
                endpoint=job.endpoint,
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                total_tokens=usage.total_tokens,
                cost=spent,
                committed=False,
                requests_completed=sum(a.error is None for a in answers),
                requests_failed=sum(a.error is not None for a in answers),
                provider=s.spec.provider.name,
                tier=tier,
                executor="serial",
            )
        )
        return spent or Decimal(0)
