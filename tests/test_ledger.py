"""The ledger: usage counted once per batch, estimates replaced, limits and jobs kept."""

from __future__ import annotations

import threading
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from batchgrader.ledger.records import JobStatus
from batchgrader.ledger.store import JobRow, Ledger, UsageEvent, now_iso


def _event(batch_id: str = "batch_1", tokens: int = 100, cost: str = "0.01") -> UsageEvent:
    return UsageEvent(
        timestamp=now_iso(),
        batch_id=batch_id,
        job_id="job",
        source_file="/data/d.csv",
        api_key_prefix="sk-...wxyz",
        base_url_host="127.0.0.1",
        model="gpt-4.1-mini",
        endpoint="/v1/chat/completions",
        input_tokens=tokens,
        cached_input_tokens=0,
        output_tokens=tokens // 10,
        reasoning_tokens=0,
        total_tokens=tokens + tokens // 10,
        cost=Decimal(cost),
        committed=False,
        requests_completed=3,
        requests_failed=0,
    )


def _job(job_id: str, fingerprint: str = "fp", status: JobStatus = JobStatus.RUNNING) -> JobRow:
    stamp = now_iso()
    return JobRow(
        id=job_id,
        fingerprint=fingerprint,
        input_path="/data/d.csv",
        input_hash="h",
        model="gpt-4.1-mini",
        endpoint="/v1/chat/completions",
        request_settings="{}",
        output_path=None,
        status=status,
        rows=3,
        created_at=stamp,
        updated_at=stamp,
    )


def test_record_usage_once_per_batch(tmp_path: Path) -> None:
    """The second record of a batch's actual usage is refused and changes nothing."""
    ledger = Ledger.open(tmp_path / "l.sqlite3")
    assert ledger.record_usage(_event(tokens=100)) is True
    assert ledger.record_usage(_event(tokens=999, cost="9")) is False
    (event,) = ledger.usage_events()
    assert (event.input_tokens, event.cost, event.committed) == (100, Decimal("0.01"), False)


def test_actual_usage_replaces_the_estimate(tmp_path: Path) -> None:
    """A committed estimate is replaced by the actual usage; commits never override it."""
    ledger = Ledger.open(tmp_path / "l.sqlite3")
    ledger.commit_usage(_event(tokens=5000, cost="1"))
    (estimate,) = ledger.usage_events()
    assert estimate.committed is True
    assert ledger.record_usage(_event(tokens=120, cost="0.02")) is True
    ledger.commit_usage(_event(tokens=7000, cost="2"))  # a late estimate is ignored
    ledger.release_usage("batch_1")  # and the actual usage is not released
    (actual,) = ledger.usage_events()
    assert (actual.input_tokens, actual.cost, actual.committed) == (120, Decimal("0.02"), False)


def test_release_drops_only_an_estimate(tmp_path: Path) -> None:
    """A batch that never ran (failed validation) leaves no usage behind."""
    ledger = Ledger.open(tmp_path / "l.sqlite3")
    ledger.commit_usage(_event("batch_a"))
    ledger.record_usage(_event("batch_b"))
    ledger.release_usage("batch_a")
    assert [e.batch_id for e in ledger.usage_events()] == ["batch_b"]


def test_concurrent_records_count_once(tmp_path: Path) -> None:
    """Two processes' connections racing to record one batch: exactly one wins."""
    path = tmp_path / "l.sqlite3"
    Ledger.open(path).commit_usage(_event())
    ledgers = [Ledger.open(path) for _ in range(6)]
    barrier = threading.Barrier(len(ledgers))
    wins: list[bool] = []

    def record(ledger: Ledger) -> None:
        barrier.wait()
        wins.append(ledger.record_usage(_event()))

    threads = [threading.Thread(target=record, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 5 + [True]
    assert len(Ledger.open(path).usage_events()) == 1


def test_usage_window(tmp_path: Path) -> None:
    """usage_events filters by timestamp, since inclusive, until exclusive."""
    ledger = Ledger.open(tmp_path / "l.sqlite3")
    for day, batch in (("01", "a"), ("02", "b"), ("03", "c")):
        ledger.record_usage(replace(_event(batch), timestamp=f"2026-01-{day}T00:00:00+00:00"))
    window = ledger.usage_events(since="2026-01-02", until="2026-01-03")
    assert [e.batch_id for e in window] == ["b"]


def test_learned_limit_upsert(tmp_path: Path) -> None:
    """A learned enqueued-token limit is stored per model and replaced when learned again."""
    ledger = Ledger.open(tmp_path / "l.sqlite3")
    assert ledger.learned_limit("gpt-4o") is None
    ledger.learn_limit("gpt-4o", 90_000)
    ledger.learn_limit("gpt-4o", 80_000)
    ledger.learn_limit("gpt-4o-mini", 2_000_000)
    assert ledger.learned_limit("gpt-4o") == 80_000
    assert ledger.learned_limit("gpt-4o-mini") == 2_000_000


def test_superseded_job_not_found_by_fingerprint(tmp_path: Path) -> None:
    """A re-run finds the newest live job of a fingerprint, never a superseded one."""
    ledger = Ledger.open(tmp_path / "l.sqlite3")
    ledger.add_job(_job("old"), [])
    found = ledger.job_by_fingerprint("fp")
    assert found is not None and found.id == "old"
    ledger.set_job("old", status="superseded")
    assert ledger.job_by_fingerprint("fp") is None
    ledger.add_job(_job("new"), [])
    found = ledger.job_by_fingerprint("fp")
    assert found is not None and found.id == "new"


def test_ledger_file_is_private(tmp_path: Path) -> None:
    """The ledger and its WAL files are readable by the user only."""
    path = tmp_path / "state" / "l.sqlite3"
    ledger = Ledger.open(path)
    ledger.record_usage(_event())
    ledger.close()
    Ledger.open(path).close()
    for suffix in ("", "-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            assert side.stat().st_mode & 0o077 == 0, side
