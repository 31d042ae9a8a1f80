"""What a run needs, in one object: ``Session`` (settings, request spec, ledger, provider
transport, retry policy, clock, event sink, how to talk to the user), opened by
``open_session``; ``GradeOptions`` and ``RunReport`` are a run's input and output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from batchgrader.data.formats import Format
from batchgrader.errors import (
    Interrupted,
)
from batchgrader.execution.direct import direct_executor
from batchgrader.execution.events import Clock, EventSink, Identity, SystemClock, TickSink
from batchgrader.execution.executor import RowExecutorFactory
from batchgrader.execution.locks import JobLock
from batchgrader.execution.pilot import PilotReport
from batchgrader.execution.resubmit import RetryScope
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.execution.summary import RunSummary
from batchgrader.ledger.records import ChunkMode
from batchgrader.ledger.store import Ledger
from batchgrader.money import budget
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import BatchTransport
from batchgrader.settings import Settings

log = logging.getLogger(__name__)


class RunReport(BaseModel):
    """Every file of one ``grade`` run."""

    files: list[RunSummary]
    #: USD spent today (UTC) by every run sharing the ledger.
    today_cost: Decimal | None = None


@dataclass(frozen=True)
class GradeOptions:
    output: Path | None = None
    output_format: Format | None = None
    overwrite: bool = False
    force: bool = False
    detach: bool = False
    retry: RetryScope | None = None
    #: Wait for a job another process is running (False: stop with exit 2).
    wait: bool = True
    #: ``--yes``: submit over a budget limit, without asking.
    yes: bool = False


@dataclass
class Session:
    """What a run needs; built by ``open_session``."""

    settings: Settings
    spec: RequestSpec
    ledger: Ledger
    transport: BatchTransport
    policy: RetryPolicy
    identity: Identity
    clock: Clock
    on_event: EventSink
    #: One line for people (the CLI prints it on stderr).
    say: Callable[[str], None]
    #: Ask the user a yes/no question; None when there is no terminal to ask on.
    confirm: Callable[[str], bool] | None
    #: Called once per poll round (the board's heartbeat).
    on_tick: TickSink = lambda: None
    #: Show what a pilot found (before the rest is submitted).
    on_pilot: Callable[[PilotReport], None] = lambda report: None
    locks: list[JobLock] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    #: Dollars spent by direct requests in this run (checked against budget.max_cost_usd).
    spent: Decimal = Decimal(0)
    #: Builds the executor of the ``direct`` chunks (the executor seam: execution/executor.py).
    direct_executor: RowExecutorFactory = direct_executor


@contextmanager
def open_session(
    settings: Settings,
    spec: RequestSpec,
    ledger: Ledger,
    identity: Identity,
    *,
    on_event: EventSink,
    say: Callable[[str], None],
    confirm: Callable[[str], bool] | None,
    on_first_request: Callable[[], None] = lambda: None,
    clock: Clock | None = None,
    on_tick: TickSink = lambda: None,
) -> Iterator[Session]:
    """A session; Ctrl-C becomes ``Interrupted`` (state saved, how to resume)."""
    clock = clock or SystemClock()
    transport = spec.provider.batch_transport()  # a missing key fails here, before any work
    policy = RetryPolicy(
        retries=settings.api.max_retries,
        max_wait=settings.api.retry_max_wait_seconds,
        sleep=clock.sleep,
        base_url=getattr(transport, "base_url", None),
        on_first_call=on_first_request,
    )
    session = Session(
        settings=settings,
        spec=spec,
        ledger=ledger,
        transport=transport,
        policy=policy,
        identity=identity,
        clock=clock,
        on_event=on_event,
        say=say,
        confirm=confirm,
        on_tick=on_tick,
    )
    try:
        yield session
    except KeyboardInterrupt:
        current = session.running[-1] if session.running else None
        hint = "Run the same command again to resume" + (
            f" (or: batchgrader jobs resume {current})." if current else "."
        )
        raise Interrupted(_interrupted(ledger, current), hint=hint) from None
    finally:
        budget.release_reservations(ledger, session.running)
        for lock in session.locks:
            lock.release()
        transport.close()


def _interrupted(ledger: Ledger, job_id: str | None) -> str:
    """What Ctrl-C left behind: batches keep running; direct calls in flight are dropped."""
    chunks = ledger.chunks(job_id) if job_id else []
    sending = any(c.mode is ChunkMode.DIRECT and c.status.in_flight for c in chunks)
    batches = any(c.mode is ChunkMode.BATCH and c.status.in_flight for c in chunks)
    said = ["Interrupted."]
    if sending:
        said.append(
            "Every answer received is kept; the direct requests in flight were abandoned "
            "(the provider may have run them)."
        )
    if batches or not sending:
        said.append(
            "Batches already submitted keep running at the provider; nothing was cancelled."
        )
    said.append("Nothing will be paid twice.")
    return " ".join(said)
