"""Budgets, checked before anything is submitted.

A run's new work is every chunk not yet handed to the provider (``pending``,
``uploaded``, or ``creating`` without a recorded batch); chunks already submitted or
collected are in the ledger already, as committed or spent usage, and count once there.
The estimate is exact for input tokens (for Claude, whose tokens are estimated, the
chunks hold the upper bound of the file's figure: see ``planning.measure``); output is
the typical answer size (expected) or ``max_tokens_per_response`` for every request
(worst case).

Limits (``[budget]`` settings; ``--max-cost`` sets ``max_cost_usd`` for one run):

- ``daily_token_limit``: today's recorded tokens (spent and committed, of every process
  sharing the ledger) plus this run's input and expected output tokens.
- ``max_cost_usd``: this run's worst-case cost.
- ``monthly_budget_usd``: this calendar month's spent and committed dollars plus this
  run's worst-case cost.
- ``confirm_above_usd``: a run expected to cost more asks first (the CLI's job).

Days and months are UTC. The core only decides; asking the user is left to the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from batchgrader.errors import BudgetExceeded
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, UsageEvent
from batchgrader.ledger.store import Ledger, now_iso
from batchgrader.money.costs import as_utc, day_start, month_start, select
from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.estimate import expected_output_tokens
from batchgrader.planning.spec import RequestSpec
from batchgrader.settings import BudgetSettings, Settings

#: Chunk states whose spend is not in the ledger yet.
NEW_WORK = frozenset({ChunkStatus.PENDING, ChunkStatus.PREPARED, ChunkStatus.CREATING})
_HINT = "Pass --yes to submit anyway, or raise the limit (see: batchgrader config show)."


class RunEstimate(BaseModel):
    """Tokens and dollars of the work a run would submit (cost None when unpriced)."""

    model: str
    chunks: int
    requests: int
    input_tokens: int
    expected_output_tokens: int
    worst_output_tokens: int
    expected_cost: Decimal | None
    worst_cost: Decimal | None
    #: ``exact``, or ``estimated`` when the input tokens are an estimate's upper bound.
    input_tokens_kind: str = "exact"

    @property
    def input_note(self) -> str:
        """Said after a figure that includes estimated input tokens."""
        return "" if self.input_tokens_kind == "exact" else " (input at its estimate's upper bound)"

    @property
    def expected_tokens(self) -> int:
        """Input plus expected output tokens."""
        return self.input_tokens + self.expected_output_tokens


class BudgetCheck(BaseModel):
    """The estimate, the ledger's figures it was compared with, and the verdicts."""

    estimate: RunEstimate
    today_tokens: int
    month_cost: Decimal
    refusals: list[str]
    confirm: str | None

    def raise_if_refused(self) -> None:
        """``BudgetExceeded`` listing every limit the run would break."""
        if self.refusals:
            raise BudgetExceeded("Nothing was submitted: " + " ".join(self.refusals), hint=_HINT)

    def not_confirmed(self, *, interactive: bool) -> BudgetExceeded:
        """The error of a run that needed a confirmation it did not get."""
        if interactive:
            return BudgetExceeded("Not confirmed: nothing was submitted.")
        return BudgetExceeded(
            f"Nothing was submitted: {self.confirm} Confirmation needs an interactive terminal.",
            hint="Pass --yes to submit without asking, or raise budget.confirm_above_usd.",
        )


def new_chunks(ledger: Ledger, jobs: Iterable[JobRow]) -> list[ChunkRow]:
    """The chunks of ``jobs`` that a run would submit now."""
    return [c for job in jobs for c in ledger.chunks(job.id) if c.status in NEW_WORK]


def estimate_run(
    chunks: Sequence[ChunkRow],
    spec: RequestSpec,
    expected_per_request: int,
    worst_per_request: int | None = None,
) -> RunEstimate:
    """Exact input tokens of ``chunks``; expected and worst-case output; their cost.

    The worst case is ``max_tokens_per_response`` for every request unless a pilot
    measured a bound (``worst_per_request``).
    """
    per_row_worst = worst_per_request if worst_per_request is not None else spec.options.max_tokens
    requests = sum(c.requests for c in chunks)
    input_tokens = sum(c.tokens for c in chunks)
    expected = requests * expected_per_request
    worst = requests * per_row_worst
    expected_cost = worst_cost = Decimal(0) if spec.price else None
    for chunk in chunks:  # batch chunks at Batch API rates, direct ones at theirs
        if spec.price is None:
            break
        tier = chunk_tier(chunk, spec)
        out_expected = chunk.requests * expected_per_request
        out_worst = chunk.requests * per_row_worst
        base = cost(spec.price, Usage(input_tokens=chunk.tokens), tier=tier)
        assert expected_cost is not None and worst_cost is not None
        expected_cost += base + cost(spec.price, Usage(output_tokens=out_expected), tier=tier)
        worst_cost += base + cost(spec.price, Usage(output_tokens=out_worst), tier=tier)
    return RunEstimate(
        model=spec.price.model if spec.price else spec.options.model,
        chunks=len(chunks),
        requests=requests,
        input_tokens=input_tokens,
        expected_output_tokens=expected,
        worst_output_tokens=worst,
        expected_cost=expected_cost,
        worst_cost=worst_cost,
        input_tokens_kind="exact" if spec.counter.kind == "exact" else "estimated",
    )


def chunk_tier(chunk: ChunkRow, spec: RequestSpec) -> Tier:
    """The rates a chunk's requests are billed at."""
    if chunk.mode is ChunkMode.BATCH:
        return Tier.BATCH
    return Tier.direct(spec.options.service_tier)


def check_budget(
    estimate: RunEstimate,
    budget: BudgetSettings,
    events: Iterable[UsageEvent],
    *,
    now: datetime,
) -> BudgetCheck:
    """Compare a run's estimate with the limits and what the ledger already holds."""
    now = as_utc(now)
    events = list(events)
    today = select(events, since=day_start(now))
    month = select(events, since=month_start(now))
    today_tokens = sum(e.total_tokens for e in today)
    month_cost = sum((e.cost for e in month if e.cost is not None), Decimal(0))
    check = BudgetCheck(
        estimate=estimate,
        today_tokens=today_tokens,
        month_cost=month_cost,
        refusals=[],
        confirm=None,
    )
    if estimate.requests == 0:
        return check  # nothing new: a re-attached run never counts twice
    limit = budget.daily_token_limit
    if limit is not None and today_tokens + estimate.expected_tokens > limit:
        check.refusals.append(
            f"budget.daily_token_limit is {limit:,} tokens; {today_tokens:,} are recorded "
            f"today (UTC, collected and in flight) and this run adds "
            f"{estimate.expected_tokens:,} ({estimate.input_tokens:,} input{estimate.input_note} + "
            f"{estimate.expected_output_tokens:,} expected output) = "
            f"{today_tokens + estimate.expected_tokens:,}."
        )
    worst = estimate.worst_cost
    cap = budget.max_cost_usd
    if cap is not None:
        if worst is None:
            check.refusals.append(_unpriced(estimate, "budget.max_cost_usd (--max-cost)"))
        elif worst > cap:
            check.refusals.append(
                f"The worst-case cost {usd(worst)} (every answer at "
                f"max_tokens_per_response{estimate.input_note}) exceeds the cap of {usd(cap)} "
                "(budget.max_cost_usd / --max-cost)."
            )
    monthly = budget.monthly_budget_usd
    if monthly is not None:
        if worst is None:
            check.refusals.append(_unpriced(estimate, "budget.monthly_budget_usd"))
        elif month_cost + worst > monthly:
            check.refusals.append(
                f"budget.monthly_budget_usd is {usd(monthly)}; {usd(month_cost)} is spent or "
                f"committed in {now:%Y-%m} (UTC) and this run's worst case is {usd(worst)} = "
                f"{usd(month_cost + worst)}."
            )
    expected = estimate.expected_cost
    if expected is not None and expected > budget.confirm_above_usd:
        check.confirm = (
            f"This run is expected to cost {usd(expected)} (worst case "
            f"{usd(worst or expected)}) for {estimate.requests:,} requests, more than "
            f"budget.confirm_above_usd ({usd(budget.confirm_above_usd)})."
        )
    return check


@dataclass(frozen=True)
class Measured:
    """Output tokens per request a pilot measured: expected, and a bound for budgets."""

    expected: int
    worst: int


def check_run(
    ledger: Ledger,
    jobs: Iterable[JobRow],
    spec: RequestSpec,
    settings: Settings,
    *,
    now: datetime,
    chunks: Sequence[ChunkRow] | None = None,
    measured: Measured | None = None,
) -> BudgetCheck:
    """The budget check of grading ``jobs`` now: their new chunks (or ``chunks``) against
    the limits, at the measured output size when a pilot measured it."""
    expected = expected_output_tokens(spec, settings.request.expected_output_tokens)
    worst = None
    if measured is not None:
        expected, worst = measured.expected, measured.worst
    work = list(chunks) if chunks is not None else new_chunks(ledger, jobs)
    estimate = estimate_run(work, spec, expected, worst)
    return check_budget(estimate, settings.budget, ledger.usage_events(), now=now)


#: The id prefix of a run's budget reservations (committed usage before any create).
RESERVATION = "reserve:"


def reservation_id(job_id: str, chunk: int) -> str:
    """The id of a chunk's budget reservation (made before anything is submitted)."""
    return f"{RESERVATION}{job_id}:{chunk}"


def reserve_run(
    ledger: Ledger,
    jobs: Sequence[JobRow],
    spec: RequestSpec,
    settings: Settings,
    *,
    now: datetime,
    enforce: bool,
    stale: Callable[[str], bool],
    chunks: Sequence[ChunkRow] | None = None,
    measured: Measured | None = None,
) -> BudgetCheck:
    """Check the budgets and reserve this run's worst case, in one ledger transaction.

    Two runs sharing a ledger therefore cannot pass a budget together: the second sees
    the first's reservation. Reservations of jobs no process is running (``stale``: a
    run killed before it released them) are dropped first. With ``enforce`` off
    (``--yes``), the check still reports but never refuses.
    """
    mine = {job.id for job in jobs}
    with ledger.transaction() as db:
        rows = db.execute(
            "SELECT DISTINCT job_id FROM usage_events WHERE batch_id LIKE ? AND committed = 1",
            (RESERVATION + "%",),
        ).fetchall()
        for (job_id,) in rows:
            if job_id in mine or job_id is None or stale(job_id):
                db.execute(
                    "DELETE FROM usage_events WHERE job_id IS ? AND batch_id LIKE ?",
                    (job_id, RESERVATION + "%"),
                )
        work = list(chunks) if chunks is not None else new_chunks(ledger, jobs)
        check = check_run(ledger, jobs, spec, settings, now=now, chunks=work, measured=measured)
        if enforce:
            check.raise_if_refused()
        price = spec.price
        per_row = measured.worst if measured is not None else spec.options.max_tokens
        for chunk in work:
            worst = Usage(input_tokens=chunk.tokens, output_tokens=chunk.requests * per_row)
            values = {
                "timestamp": now_iso(),
                "batch_id": reservation_id(chunk.job_id, chunk.idx),
                "job_id": chunk.job_id,
                "model": price.model if price else spec.options.model,
                "input_tokens": worst.input_tokens,
                "cached_input_tokens": 0,
                "output_tokens": worst.output_tokens,
                "reasoning_tokens": 0,
                "total_tokens": worst.total_tokens,
                "cost": str(cost(price, worst, tier=chunk_tier(chunk, spec))) if price else None,
                "committed": 1,
                "requests_completed": 0,
                "requests_failed": 0,
                "provider": spec.provider.name,
            }
            db.execute(
                f"INSERT OR REPLACE INTO usage_events ({', '.join(values)})"
                f" VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
    return check


def release_reservations(ledger: Ledger, job_ids: Iterable[str]) -> None:
    """Drop what a run reserved and did not submit (called when a run ends)."""
    for job_id in job_ids:
        ledger.db.execute(
            "DELETE FROM usage_events WHERE job_id = ? AND batch_id LIKE ? AND committed = 1",
            (job_id, RESERVATION + "%"),
        )


def _unpriced(estimate: RunEstimate, setting: str) -> str:
    return (
        f"The cost of this run is unknown ({estimate.model} has no price), so {setting} "
        "cannot be checked."
    )


def usd(value: Decimal) -> str:
    """Dollars in a message: cents when that is exact, else every digit (a figure over a
    limit never looks equal to it)."""
    if value == value.quantize(Decimal("0.01")):
        return f"${value:,.2f}"
    return f"${value.normalize():,f}"
