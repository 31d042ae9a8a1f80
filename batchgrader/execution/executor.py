"""The executor seam: how a job's chunks are executed, apart from which provider answers.

Every chunk has a mode (``ChunkMode``), and each mode has its executor:

- ``batch``: ``BatchExecutor`` submits each chunk to the provider's Batch API (a file
  upload or inline requests, whichever the provider's transport does), polls, and
  collects the results file;
- ``direct``: the session's row executor answers the rows one by one with synchronous
  calls (``DirectExecutor``: bounded concurrency, paced, durable row by row). Pilots and
  deadline tails are direct chunks of a batch job.

``Dispatch`` runs a job's chunks through them, batches first. An executor reads its
chunks from the ledger, records each answer where the merge finds it (a batch's results
file, or the chunk's answers file: ``execution/answers.py``), records the usage it paid
for as usage events (with its tier and executor name, never assuming Batch rates), and
sets each chunk's status. It never prints: it reports through the session's event sink.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from batchgrader.ledger.records import ChunkMode, ChunkRow, JobRow

if TYPE_CHECKING:
    from batchgrader.execution.session import Session


class Executor(Protocol):
    """Runs a job's chunks of one mode."""

    mode: ChunkMode

    def run(self, job: JobRow, *, only: set[int] | None = None) -> list[ChunkRow]:
        """Run the job's unfinished chunks of this mode (or those of them in ``only``);
        returns all the job's chunks as the ledger has them afterwards."""
        ...


class RowExecutor(Executor, Protocol):
    """An executor that answers rows one by one and pays as it goes (``direct`` chunks)."""

    #: Dollars spent on this run's direct requests so far (started from the session's
    #: ``spent``), checked against ``budget.max_cost_usd`` before each request.
    spent: Decimal


#: Builds the row executor of a session (``Session.direct_executor``).
RowExecutorFactory = Callable[["Session"], RowExecutor]
