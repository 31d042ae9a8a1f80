"""The batch executor with an injected clock, against the fake server through the real SDK."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from openai import OpenAI

from batchgrader.errors import ProviderError
from batchgrader.execution.batch import BatchExecutor
from batchgrader.execution.events import ChunkEvent, Identity
from batchgrader.execution.jobs import identity_of, new_job
from batchgrader.execution.layout import JobFiles
from batchgrader.ledger.records import ChunkStatus
from batchgrader.ledger.store import JobRow, Ledger
from batchgrader.paths import ledger_db
from batchgrader.planning.spec import request_spec
from batchgrader.planning.workload import Workload
from batchgrader.providers.openai.client import OpenAIBatches
from batchgrader.settings import Settings
from batchgrader.settings.loading import load_settings
from tests.conftest import FAKE_KEY
from tests.fakes.batch_api import FakeBatchAPI
from tests.helpers import write_table

IDENTITY = Identity(api_key_prefix="sk-...wxyz", base_url_host="127.0.0.1")


class StepClock:
    """Real wall time for ``now`` (batches carry server timestamps); sleeps only recorded."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class Setup:
    """A job on a small input, its ledger, client and a runner factory."""

    def __init__(self, folder: Path, rows: int, overrides: dict[str, Any]) -> None:
        texts = [f"Line {i}: owls hunt at night in forest {i}." for i in range(rows)]
        src = write_table(
            folder / "d.csv", pl.DataFrame({"id": list(range(rows)), "response": texts})
        )
        base = {
            "api.max_retries": 0,
            "run.poll_interval_seconds": 1.0,
            "run.poll_max_interval_seconds": 4.0,
        }
        self.settings: Settings = load_settings(base | overrides).settings
        self.spec = request_spec(self.settings)
        self.ledger = Ledger.open(ledger_db(self.settings.state_dir()))
        self.client = OpenAIBatches(self.settings.api)
        workload = Workload.of(src, self.spec)
        input_hash, fp = identity_of(workload, self.spec)
        self.job: JobRow = new_job(workload, self.spec, self.settings, self.ledger, input_hash, fp)
        self.clock = StepClock()
        self.events: list[ChunkEvent] = []

    def runner(self) -> BatchExecutor:
        return BatchExecutor(
            self.client,
            self.ledger,
            self.settings,
            self.spec,
            IDENTITY,
            on_event=self.events.append,
            clock=self.clock,
        )


@pytest.fixture
def setup(fake_api: FakeBatchAPI, isolated_env: Path) -> Setup:
    return Setup(isolated_env, 4, {})


def _setup(folder: Path, rows: int, **overrides: Any) -> Setup:
    return Setup(folder, rows, overrides)


def test_gives_up_after_repeated_failures_keeping_the_batch(
    fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Polls failing again and again: a clear error after backing off, the batch id kept."""
    fast_polls = {"run.poll_interval_seconds": 0.001, "run.poll_max_interval_seconds": 0.005}
    waits = {"api.max_retries": 5, "api.retry_max_wait_seconds": 60.0}  # on a fake clock
    setup = _setup(isolated_env, 4, **fast_polls, **waits)
    fake_api.inject_fault("retrieve", "503", times=6)
    with pytest.raises(ProviderError) as raised:
        setup.runner().run(setup.job)
    assert "Giving up after 6 attempts" in raised.value.message
    assert raised.value.hint is not None and "run the same command again" in raised.value.hint
    backoff = [s for s in setup.clock.sleeps if s >= 0.5]
    assert len(backoff) == 5  # one wait between two tries: api.max_retries of them
    for n, seconds in enumerate(backoff, start=1):
        assert 0.5 * min(2.0 ** (n - 1), 60.0) <= seconds <= min(2.0 ** (n - 1), 60.0)
    (chunk,) = setup.ledger.chunks(setup.job.id)
    assert chunk.status == "submitted" and chunk.batch_id in fake_api.batches
    chunks = setup.runner().run(setup.job)  # the service is back: a new runner finishes
    assert [c.status for c in chunks] == ["done"]
    assert fake_api.batches_created == 1


def test_poll_interval_backs_off_and_resets(fake_api: FakeBatchAPI, setup: Setup) -> None:
    """Unchanged polls wait longer (up to the max); a state change resets the wait."""
    fake_api.polls_per_state = 6
    setup.runner().run(setup.job)
    sleeps = setup.clock.sleeps
    assert all(s <= 4.0 * 1.1 for s in sleeps), sleeps
    assert any(s > 3.0 for s in sleeps), sleeps  # reached the max between state changes
    after_long = [b for a, b in itertools.pairwise(sleeps) if a > 3.0 and b < 1.2]
    assert after_long, sleeps  # and came back to the first interval after a change


def test_resolves_a_create_intent_left_by_a_crash(
    fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A chunk left in ``creating`` whose batch exists is adopted, not created again."""
    s = _setup(isolated_env, 3)
    (chunk,) = s.ledger.chunks(s.job.id)
    sdk = OpenAI(api_key=FAKE_KEY, base_url=fake_api.base_url)
    path = JobFiles(s.settings, s.job.id).request_file(chunk.request_file)
    with path.open("rb") as handle:
        file_id = sdk.files.create(file=(path.name, handle), purpose="batch").id
    s.ledger.set_chunk(
        s.job.id,
        chunk.idx,
        status=ChunkStatus.CREATING,
        prepared_ref=file_id,
        attempt=1,
        intent_at=int(time.time()),
    )
    meta = {
        "batchgrader_job": s.job.id,
        "chunk": "0",
        "attempt": "1",
        "source_file": "d.csv",
    }
    batch = sdk.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=meta,
    )
    chunks = s.runner().run(s.job)
    assert [c.status for c in chunks] == ["done"]
    assert chunks[0].batch_id == batch.id
    assert fake_api.batches_created == 1
    assert fake_api.request_count("upload") == 1  # the recorded upload was reused


def test_new_attempt_never_adopts_an_old_batch(fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """A chunk's next attempt (e.g. after a refused batch) gets its own batch, created once."""
    s = _setup(isolated_env, 3)
    s.runner().run(s.job, detach=True)
    (chunk,) = s.ledger.chunks(s.job.id)
    assert chunk.batch_id is not None
    # As after a batch refused for the token limit: attempt 2 is pending its create.
    s.ledger.set_chunk(s.job.id, 0, status=ChunkStatus.CREATING, batch_id=None, attempt=2)
    chunks = s.runner().run(s.job)
    assert [c.status for c in chunks] == ["done"]
    assert fake_api.batches_created == 2
    created = [b["metadata"]["attempt"] for b in fake_api.batches.values()]
    assert created == ["1", "2"]


def test_learned_limit_caps_batches_in_flight(fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """With a learned enqueued-token limit below two chunks, one batch runs at a time."""
    s = _setup(isolated_env, 6, **{"chunking.split_row_limit": 2})
    chunks = s.ledger.chunks(s.job.id)
    assert len(chunks) == 3
    s.ledger.learn_limit(s.spec.options.model, max(c.tokens for c in chunks) + 1)
    fake_api.polls_per_state = 2
    done = s.runner().run(s.job)
    assert [c.status for c in done] == ["done"] * 3
    assert fake_api.max_in_flight == 1
    assert fake_api.batches_created == 3


def test_events_reach_a_terminal_status(fake_api: FakeBatchAPI, setup: Setup) -> None:
    """Every chunk's events run from submission to completion, with batch id and counts."""
    setup.runner().run(setup.job)
    statuses = [e.status for e in setup.events]
    assert statuses[0] == "validating"
    assert statuses[-1] == "completed"
    last = setup.events[-1]
    assert (last.completed, last.failed, last.total) == (4, 0, 4)
    assert last.batch_id in fake_api.batches
    assert last.cost is not None
