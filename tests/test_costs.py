"""The costs core: window and date parsing, reports by window and group, export, today's cost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from batchgrader.errors import OutputExistsError, UsageError
from batchgrader.ledger.store import Ledger, UsageEvent
from batchgrader.money import costs
from batchgrader.money import export as costs_export

NOW = datetime(2026, 11, 15, 12, 0, 0, tzinfo=UTC)


def usage_event(
    batch_id: str,
    timestamp: str,
    *,
    model: str = "m1",
    input_tokens: int = 0,
    cached: int = 0,
    output_tokens: int = 0,
    cost: str | None = None,
    committed: bool = False,
    job: str | None = None,
    source: str | None = None,
) -> UsageEvent:
    """A usage event with the given figures (the rest neutral)."""
    return UsageEvent(
        timestamp=timestamp,
        batch_id=batch_id,
        job_id=job,
        source_file=source,
        api_key_prefix="sk-...wxyz",
        base_url_host="127.0.0.1",
        model=model,
        endpoint="/v1/chat/completions",
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        reasoning_tokens=0,
        total_tokens=input_tokens + output_tokens,
        cost=Decimal(cost) if cost is not None else None,
        committed=committed,
        requests_completed=0 if committed else 3,
        requests_failed=0,
    )


#: A ledger's worth of events around NOW (2026-11-15 12:00 UTC), figures chosen by hand.
EVENTS = [
    usage_event(
        "batch_a", "2026-11-15T09:00:00+00:00", input_tokens=1000, cached=200,
        output_tokens=100, cost="0.5", job="j1", source="/data/a.csv",
    ),
    usage_event(
        "batch_b", "2026-11-15T01:30:00+00:00", model="m2", input_tokens=2000,
        output_tokens=300, cost="1.25", job="j2", source="/data/b.csv",
    ),
    usage_event(
        "batch_c", "2026-11-12T10:00:00+00:00", input_tokens=500, output_tokens=50,
        cost="0.1", job="j1", source="/data/a.csv",
    ),
    usage_event(
        "batch_d", "2026-11-01T00:00:00+00:00", input_tokens=10000, output_tokens=1000,
        cost="3", job="j3", source="/data/a.csv",
    ),
    usage_event(
        "batch_e", "2026-11-15T11:00:00+00:00", input_tokens=400, output_tokens=4000,
        cost="2", committed=True, job="j4", source="/data/c.csv",
    ),
    # 2026-11-01T00:59:59Z written with another offset, and with no price
    usage_event(
        "batch_f", "2026-10-31T23:59:59-01:00", model="m2", input_tokens=100,
        output_tokens=10, cost=None, job="j2",
    ),
]  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A ledger holding EVENTS, recorded the way the runner records them."""
    db = Ledger.open(tmp_path / "ledger.sqlite3")
    for e in EVENTS:
        if e.committed:
            db.commit_usage(e)
        else:
            db.record_usage(e)
    return db


def report_of(ledger: Ledger, **kwargs: object) -> costs.CostReport:
    """The report of ``ledger`` at NOW."""
    return costs.build_report(ledger.usage_events(), now=NOW, **kwargs)  # type: ignore[arg-type]


class TestParseMoment:
    """``--since`` / ``--until`` values."""

    @pytest.mark.parametrize(
        ("text", "delta"),
        [
            ("30m", timedelta(minutes=30)),
            ("24h", timedelta(hours=24)),
            ("7d", timedelta(days=7)),
            ("4w", timedelta(weeks=4)),
            ("90s", timedelta(seconds=90)),
            (" 2d ", timedelta(days=2)),
        ],
    )
    def test_durations_count_back_from_now(self, text: str, delta: timedelta) -> None:
        """A duration is that long before now."""
        assert costs.parse_moment(text, now=NOW) == NOW - delta

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
            ("2026-11-01T09:30:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
            ("2026-11-01T09:30:00+02:00", datetime(2026, 11, 1, 7, 30, tzinfo=UTC)),
            ("2026-11-01T09:30:00Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
            ("2026-11-01 09:30", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
            ("today", datetime(2026, 11, 15, tzinfo=UTC)),
            ("yesterday", datetime(2026, 11, 14, tzinfo=UTC)),
            ("now", NOW),
        ],
    )
    def test_dates_and_timestamps(self, text: str, expected: datetime) -> None:
        """Dates are midnight UTC, naive times are UTC, offsets are converted to UTC."""
        moment = costs.parse_moment(text, now=NOW)
        assert moment == expected
        assert moment.utcoffset() == timedelta(0)

    def test_until_a_date_includes_that_day(self) -> None:
        """``--until 2026-11-30`` ends at the end of the 30th; a timestamp ends exactly there."""
        assert costs.parse_moment("2026-11-30", now=NOW, end=True) == datetime(
            2026, 12, 1, tzinfo=UTC
        )
        assert costs.parse_moment("2026-11-30T10:00:00", now=NOW, end=True) == datetime(
            2026, 11, 30, 10, tzinfo=UTC
        )

    @pytest.mark.parametrize("text", ["7x", "", "7", "d7", "last week", "2026-13-01", "-3d"])
    def test_bad_values_are_usage_errors(self, text: str) -> None:
        """Anything else is a usage error (exit 2) naming the flag and the accepted forms."""
        with pytest.raises(UsageError) as info:
            costs.parse_moment(text, now=NOW, flag="--until")
        assert info.value.exit_code == 2
        assert "--until" in info.value.message and "7d" in info.value.message

    def test_window_must_be_ordered(self) -> None:
        """--since after --until is refused."""
        with pytest.raises(UsageError, match="before --until"):
            costs.parse_window("2026-11-10", "2026-11-01", now=NOW)
        assert costs.parse_window(None, None, now=NOW) == (None, None)


class TestReport:
    """Aggregation by window and group against hand-computed totals."""

    def test_default_windows(self, ledger: Ledger) -> None:
        """All time, today and the last 7 days; committed apart from spent; unpriced apart."""
        report = report_of(ledger)
        every, today, week = report.windows
        assert [w.name for w in report.windows] == ["all time", "today", "last 7 days"]
        assert every.spent.batches == 5
        assert every.spent.input_tokens == 13600
        assert every.spent.cached_input_tokens == 200
        assert every.spent.output_tokens == 1460
        assert every.spent.total_tokens == 15060
        assert every.spent.cost_usd == Decimal("4.85")
        assert every.spent.unpriced_batches == 1
        assert every.committed.batches == 1
        assert every.committed.total_tokens == 4400
        assert every.committed.cost_usd == Decimal(2)
        assert (today.spent.batches, today.spent.total_tokens) == (2, 3400)
        assert today.spent.cost_usd == Decimal("1.75")
        assert today.committed.cost_usd == Decimal(2)
        assert today.since == datetime(2026, 11, 15, tzinfo=UTC)
        assert week.spent.cost_usd == Decimal("1.85")
        assert week.spent.batches == 3
        assert week.since == NOW - timedelta(days=7)
        assert report.recorded_events == 6

    def test_by_model_covers_all_time_by_default(self, ledger: Ledger) -> None:
        """Models, most expensive first, spent and committed apart."""
        report = report_of(ledger)
        assert report.breakdown.name == "all time"
        m1, m2 = report.groups
        assert (m1.key, m1.spent.cost_usd, m1.committed.cost_usd) == (
            "m1",
            Decimal("3.6"),
            Decimal(2),
        )
        assert m1.spent.total_tokens == 12650
        assert (m2.key, m2.spent.cost_usd, m2.spent.batches) == ("m2", Decimal("1.25"), 2)
        assert m2.spent.unpriced_batches == 1

    def test_by_day_fills_empty_days(self, ledger: Ledger) -> None:
        """Every UTC day from the first event to today, in order; events land on UTC dates."""
        report = report_of(ledger, by="day")
        keys = [g.key for g in report.groups]
        assert keys == [f"2026-11-{d:02d}" for d in range(1, 16)]
        by_day = {g.key: g for g in report.groups}
        assert by_day["2026-11-01"].spent.batches == 2  # batch_d and batch_f (offset -01:00)
        assert by_day["2026-11-01"].spent.cost_usd == Decimal(3)
        assert by_day["2026-11-05"].spent.batches == 0
        assert by_day["2026-11-15"].spent.cost_usd == Decimal("1.75")
        assert by_day["2026-11-15"].committed.cost_usd == Decimal(2)

    def test_window_and_day_groups(self, ledger: Ledger) -> None:
        """A --since/--until window bounds the windows' third entry and the breakdown."""
        since, until = costs.parse_window("2026-11-12", "2026-11-14", now=NOW)
        report = report_of(ledger, by="day", since=since, until=until)
        chosen = report.windows[2]
        assert chosen.since == datetime(2026, 11, 12, tzinfo=UTC)
        assert chosen.until == datetime(2026, 11, 15, tzinfo=UTC)
        assert chosen.spent.batches == 1 and chosen.spent.cost_usd == Decimal("0.1")
        assert report.breakdown == chosen
        assert [g.key for g in report.groups] == ["2026-11-12", "2026-11-13", "2026-11-14"]

    def test_by_file_and_job(self, ledger: Ledger) -> None:
        """Files and jobs, with events lacking one grouped under a placeholder."""
        files = {g.key: g for g in report_of(ledger, by="file").groups}
        assert files["/data/a.csv"].spent.cost_usd == Decimal("3.6")
        assert files["/data/a.csv"].spent.batches == 3
        assert files["/data/c.csv"].committed.batches == 1
        assert files["(unknown)"].spent.unpriced_batches == 1
        jobs = {g.key: g for g in report_of(ledger, by="job").groups}
        assert set(jobs) == {"j1", "j2", "j3", "j4"}
        assert jobs["j1"].spent.cost_usd == Decimal("0.6")
        assert jobs["j2"].spent.batches == 2

    def test_model_filter(self, ledger: Ledger) -> None:
        """--model keeps one model's events in every figure (case-insensitive)."""
        report = report_of(ledger, model="M1")
        assert report.windows[0].spent.cost_usd == Decimal("3.6")
        assert report.windows[0].committed.cost_usd == Decimal(2)
        assert [g.key for g in report.groups] == ["m1"]
        assert report.recorded_events == 6

    def test_json_keeps_exact_figures(self, ledger: Ledger) -> None:
        """Tokens are integers and dollars exact decimal strings in the JSON."""
        ledger.record_usage(
            usage_event("batch_g", "2026-11-15T10:00:00+00:00", input_tokens=1, cost="0.0001875")
        )
        data = json.loads(report_of(ledger).model_dump_json())
        today = data["windows"][1]["spent"]
        assert today["cost_usd"] == "1.7501875"
        assert today["input_tokens"] == 3001 and isinstance(today["input_tokens"], int)

    def test_csv(self, ledger: Ledger) -> None:
        """One CSV row per window then per group, with exact dollars."""
        lines = costs_export.report_csv(report_of(ledger)).splitlines()
        assert lines[0].split(",") == list(costs_export.CSV_COLUMNS)
        assert lines[1].startswith("window,all time,,,5,13600,200,1460,0,15060,4.85,1,1,400,")
        assert lines[-1].startswith("model,m2,")
        assert len(lines) == 1 + 3 + 2

    def test_empty(self) -> None:
        """No events: zero windows and no groups."""
        report = costs.build_report([], now=NOW, by="day")
        assert report.recorded_events == 0
        assert report.groups == []
        assert report.windows[0].spent.cost_usd == 0


def test_read_events_does_not_create_the_ledger(tmp_path: Path) -> None:
    """Reading an absent ledger reads nothing and creates nothing."""
    path = tmp_path / "state" / "ledger.sqlite3"
    assert costs.read_events(path) == []
    assert not path.exists() and not path.parent.exists()


def test_today_cost_counts_collected_batches_of_today(ledger: Ledger) -> None:
    """The grade summary's "spent today": collected batches since UTC midnight only."""
    assert costs.today_cost(ledger, NOW) == Decimal("1.75")
    assert costs.today_cost(ledger, NOW + timedelta(days=3)) is None
    other_zone = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert costs.today_cost(ledger, other_zone) == Decimal("1.75")


class TestExport:
    """``costs --export``: the seed's event shape plus ours, atomic, exact."""

    def test_shape(self, ledger: Ledger, tmp_path: Path) -> None:
        """Seed fields first (request_id = batch id), then the extras; cost exact or null."""
        ledger.record_usage(usage_event("batch_g", "2026-11-15T10:00:00+00:00", cost="0.0001875"))
        target = tmp_path / "out" / "usage.jsonl"
        result = costs_export.export_events(ledger.usage_events(), target, overwrite=False)
        assert result.events == 7
        lines = target.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line, parse_float=Decimal) for line in lines]
        assert all(list(r) == list(costs_export.EXPORT_FIELDS) for r in records)
        by_id = {r["request_id"]: r for r in records}
        assert set(by_id) == {e.batch_id for e in EVENTS} | {"batch_g"}
        assert by_id["batch_g"]["cost"] == Decimal("0.0001875")
        assert '"cost": 0.0001875,' in lines[[r["request_id"] for r in records].index("batch_g")]
        assert by_id["batch_f"]["cost"] is None
        a = by_id["batch_a"]
        assert a["timestamp"] == "2026-11-15T09:00:00+00:00"
        assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (1000, 200, 100)
        assert a["total_tokens"] == 1100
        assert a["api_key_prefix"] == "sk-...wxyz"
        assert (a["job_id"], a["source_file"], a["committed"]) == ("j1", "/data/a.csv", False)
        assert by_id["batch_e"]["committed"] is True
        assert [p.name for p in target.parent.iterdir()] == ["usage.jsonl"]  # no temp file

    def test_never_over_an_existing_file(self, ledger: Ledger, tmp_path: Path) -> None:
        """An existing file is kept unless overwrite is asked for."""
        target = tmp_path / "usage.jsonl"
        target.write_text("keep\n", encoding="utf-8")
        with pytest.raises(OutputExistsError):
            costs_export.export_events(ledger.usage_events(), target, overwrite=False)
        assert target.read_text(encoding="utf-8") == "keep\n"
        costs_export.export_events(ledger.usage_events(), target, overwrite=True)
        assert len(target.read_text(encoding="utf-8").splitlines()) == 6
