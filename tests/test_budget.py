"""Budget checks: limits against the ledger's figures and a run's estimate (core, no CLI)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from batchgrader.errors import BudgetExceeded
from batchgrader.ledger.records import ChunkStatus, JobStatus
from batchgrader.ledger.store import ChunkRow, JobRow, Ledger, UsageEvent
from batchgrader.money import budget
from batchgrader.planning.spec import request_spec
from batchgrader.settings import BudgetSettings, Settings
from tests.test_costs import usage_event

NOW = datetime(2026, 11, 15, 12, 0, 0, tzinfo=UTC)


def run_estimate(
    *,
    requests: int = 10,
    input_tokens: int = 1000,
    expected_output: int = 200,
    worst_output: int = 5000,
    expected_cost: str | None = "0.01",
    worst_cost: str | None = "0.05",
) -> budget.RunEstimate:
    """A run estimate with chosen figures."""
    return budget.RunEstimate(
        model="m1",
        chunks=1 if requests else 0,
        requests=requests,
        input_tokens=input_tokens,
        expected_output_tokens=expected_output,
        worst_output_tokens=worst_output,
        expected_cost=Decimal(expected_cost) if expected_cost is not None else None,
        worst_cost=Decimal(worst_cost) if worst_cost is not None else None,
    )


#: Today: 3,000 tokens spent + 500 committed; this month $4.00 spent + $1.00 committed.
LEDGER = [
    usage_event("b1", "2026-11-15T08:00:00+00:00", input_tokens=2500, output_tokens=500,
                cost="3"),
    usage_event("b2", "2026-11-15T09:00:00+00:00", input_tokens=100, output_tokens=400,
                cost="1", committed=True),
    usage_event("b3", "2026-11-02T09:00:00+00:00", input_tokens=9000, output_tokens=1000,
                cost="1"),
    usage_event("b4", "2026-10-31T23:00:00+00:00", input_tokens=50000, cost="100"),
]  # fmt: skip


def check(
    estimate: budget.RunEstimate, events: list[UsageEvent] | None = None, **limits: object
) -> budget.BudgetCheck:
    """Check ``estimate`` against ``limits`` and LEDGER (or ``events``) at NOW."""
    settings = BudgetSettings.model_validate(limits)
    return budget.check_budget(estimate, settings, LEDGER if events is None else events, now=NOW)


def test_ledger_figures_today_and_this_month() -> None:
    """Today's tokens and this month's dollars include committed usage; UTC periods."""
    result = check(run_estimate())
    assert result.today_tokens == 3500
    assert result.month_cost == Decimal(5)
    assert result.refusals == [] and result.confirm is None
    result.raise_if_refused()


class TestDailyTokens:
    """budget.daily_token_limit: today's tokens + input + expected output."""

    def test_within(self) -> None:
        """3,500 + 1,200 = 4,700 fits a 4,700 limit."""
        assert check(run_estimate(), daily_token_limit=4700).refusals == []

    def test_over_refuses_with_the_figures(self) -> None:
        """One token over: refused, and the message carries every figure."""
        result = check(run_estimate(), daily_token_limit=4699)
        assert len(result.refusals) == 1
        message = result.refusals[0]
        for figure in ("4,699", "3,500", "1,200", "1,000 input", "200 expected output", "4,700"):
            assert figure in message
        with pytest.raises(BudgetExceeded) as info:
            result.raise_if_refused()
        assert info.value.exit_code == 2 and "--yes" in (info.value.hint or "")


class TestCost:
    """budget.max_cost_usd (--max-cost) and budget.monthly_budget_usd: worst case."""

    def test_max_cost(self) -> None:
        """The worst case, not the expected cost, is compared with the cap."""
        assert check(run_estimate(), max_cost_usd="0.05").refusals == []
        refused = check(run_estimate(), max_cost_usd="0.049")
        assert "$0.05" in refused.refusals[0] and "$0.049" in refused.refusals[0]

    def test_monthly(self) -> None:
        """This month's $5 spent and committed + $0.05 worst case against the budget."""
        assert check(run_estimate(), monthly_budget_usd="5.05").refusals == []
        refused = check(run_estimate(), monthly_budget_usd="5.04")
        assert "$5.00" in refused.refusals[0] and "$5.05" in refused.refusals[0]
        assert "2026-11" in refused.refusals[0]

    def test_unpriced_run_cannot_pass_a_cost_limit(self) -> None:
        """With no price the cost limits cannot be verified: refused (unless --yes)."""
        unpriced = run_estimate(expected_cost=None, worst_cost=None)
        assert check(unpriced).refusals == []
        result = check(unpriced, max_cost_usd="100", monthly_budget_usd="1000")
        assert len(result.refusals) == 2
        assert all("no price" in r for r in result.refusals)

    def test_every_broken_limit_is_listed(self) -> None:
        """Several limits broken at once: all are named in one error."""
        result = check(
            run_estimate(), daily_token_limit=10, max_cost_usd="0.01", monthly_budget_usd="1"
        )
        assert len(result.refusals) == 3
        with pytest.raises(BudgetExceeded, match=r"daily_token_limit.*max_cost_usd.*monthly"):
            result.raise_if_refused()


class TestConfirmation:
    """budget.confirm_above_usd: the expected cost, strictly above."""

    def test_default_five_dollars(self) -> None:
        """$5.00 expected does not ask; $5.01 does, naming both figures."""
        assert check(run_estimate(expected_cost="5", worst_cost="9")).confirm is None
        result = check(run_estimate(expected_cost="5.01", worst_cost="9"))
        assert result.confirm is not None
        assert "$5.01" in result.confirm and "$9.00" in result.confirm
        error = result.not_confirmed(interactive=False)
        assert error.exit_code == 2 and "--yes" in (error.hint or "")

    def test_configured(self) -> None:
        """A lower threshold asks sooner."""
        assert check(run_estimate(), confirm_above_usd="0.001").confirm is not None


def test_nothing_new_is_never_refused() -> None:
    """A run with no new work (a re-attached job) passes every limit, even when over."""
    result = check(
        run_estimate(requests=0, input_tokens=0, expected_output=0, worst_output=0),
        daily_token_limit=1,
        max_cost_usd="0.000001",
        monthly_budget_usd="0.01",
        confirm_above_usd="0",
    )
    assert result.refusals == [] and result.confirm is None


def _chunk(job_id: str, idx: int, status: str, requests: int, tokens: int) -> ChunkRow:
    return ChunkRow(
        job_id=job_id, idx=idx, first_row=idx * 10, last_row=idx * 10 + requests - 1,
        requests=requests, tokens=tokens, bytes=100, request_file=f"chunk-{idx}.jsonl",
        status=ChunkStatus(status), prepared_ref=None, batch_id=None, attempt=0, intent_at=None,
        error=None, result_file=None, updated_at="2026-11-15T00:00:00+00:00",
    )  # fmt: skip


def test_only_chunks_not_yet_submitted_are_new_work(tmp_path: Path) -> None:
    """pending, prepared and creating count; submitted, done, failed, halted do not."""
    ledger = Ledger.open(tmp_path / "ledger.sqlite3")
    job = JobRow(
        id="j1", fingerprint="f", input_path="/x.csv", input_hash="h", model="gpt-4.1-mini",
        endpoint="/v1/chat/completions", request_settings="{}", output_path=None,
        status=JobStatus.RUNNING, rows=70, created_at="t", updated_at="t",
    )  # fmt: skip
    statuses = ["pending", "prepared", "creating", "submitted", "done", "failed", "halted"]
    ledger.add_job(job, [_chunk("j1", i, s, 10, 100 * (i + 1)) for i, s in enumerate(statuses)])
    new = budget.new_chunks(ledger, [job])
    assert [c.status for c in new] == ["pending", "prepared", "creating"]

    spec = request_spec(Settings())
    estimate = budget.estimate_run(new, spec, expected_per_request=20)
    assert (estimate.chunks, estimate.requests, estimate.input_tokens) == (3, 30, 600)
    assert estimate.expected_output_tokens == 600
    assert estimate.worst_output_tokens == 30 * spec.options.max_tokens
    assert spec.price is not None
    rates = spec.price.batch
    per_million = Decimal(1_000_000)
    assert estimate.expected_cost == (600 * rates.input + 600 * rates.output) / per_million
    assert (
        estimate.worst_cost
        == (600 * rates.input + 30 * spec.options.max_tokens * rates.output) / per_million
    )
    ledger.close()
