"""``grade`` under provider faults: HTTP errors, lost answers, token limits, broken downloads."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.execution.events import SystemClock
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import count_prompt_tokens, judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
MODEL = "gpt-4.1-mini"


@pytest.fixture(autouse=True)
def runner_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The runner's own backoff sleeps, recorded and shortened (the SDK's are left real)."""
    asked: list[float] = []

    def sleep(self: SystemClock, seconds: float) -> None:
        asked.append(seconds)
        time.sleep(min(seconds, 0.01))

    monkeypatch.setattr(SystemClock, "sleep", sleep)
    return asked


def _texts(n: int) -> list[str]:
    return [f"Reply {i}: the tide rises twice a day near harbour {i}." for i in range(n)]


def _setup(folder: Path, n: int = 8, rows_per_chunk: int = 4) -> tuple[Path, list[str]]:
    texts = _texts(n)
    src = write_table(folder / "d.csv", pl.DataFrame({"id": list(range(n)), "response": texts}))
    (folder / "batchgrader.toml").write_text(
        f"[chunking]\nsplit_row_limit = {rows_per_chunk}\n[run]\nmax_simultaneous_batches = 2\n"
    )
    return src, texts


def _assert_graded(folder: Path, texts: list[str]) -> None:
    out = pl.read_csv(folder / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == len(texts)


def _learned(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        return dict(db.execute("SELECT model, enqueued_tokens FROM learned_limits").fetchall())


FAULTS: list[tuple[str, str, int, dict[str, Any]]] = [
    ("upload", "429", 2, {"retry_after_ms": 10}),
    ("upload", "500", 2, {}),
    ("create", "429", 1, {"retry_after": 1}),
    ("create", "500", 1, {}),
    ("create", "cannot_find_file", 1, {}),
    ("list", "503", 2, {"retry_after_ms": 10}),
    ("retrieve", "429", 2, {"retry_after_ms": 10}),
    ("retrieve", "429", 3, {}),  # as many as api.max_retries allows
    ("retrieve", "malformed_json", 1, {}),
    ("file_content", "500", 2, {}),
    ("file_content", "503", 1, {"retry_after_ms": 10}),
    ("file_content", "reset", 1, {}),
]


@pytest.mark.parametrize(("route", "kind", "times", "opts"), FAULTS)
def test_transient_faults_recover_without_duplicates(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    route: str,
    kind: str,
    times: int,
    opts: dict[str, Any],
) -> None:
    """A burst of transient errors on one route: the run completes, one batch per chunk."""
    src, texts = _setup(isolated_env)
    if route == "list":  # listing only happens to resolve a create whose answer was lost
        fake_api.inject_fault("create", "500", after_effect=True)
    fake_api.inject_fault(route, kind, times=times, **opts)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created == 2
    if kind != "malformed_json":  # that one is a 200 with a broken body
        faulted = [c for c in fake_api.calls if c.route == route and c.status != 200]
        assert len(faulted) == times


def test_no_retries_means_one_attempt(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api.max_retries = 0: one failed call stops the run, saying so; nothing is lost."""
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "0")
    src, texts = _setup(isolated_env)
    fake_api.inject_fault("retrieve", "503", times=1)
    result = bg("grade", src)
    assert result.exit_code == 1, result.output
    assert "Giving up after 1 attempt:" in result.stderr
    assert "of 8" not in result.stderr
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "2")
    assert bg("grade", src).exit_code == 0
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created == 2


def test_hung_poll_times_out_and_is_retried(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll that hangs past the client timeout is abandoned and retried."""
    monkeypatch.setenv("BATCHGRADER_API__TIMEOUT_SECONDS", "0.3")
    src, texts = _setup(isolated_env, n=4, rows_per_chunk=4)
    fake_api.inject_fault("retrieve", "timeout", delay=1.0)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created == 1


def test_lost_create_answer_adopts_the_batch(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """create succeeds but its answer is lost: the runner finds the batch, never makes two."""
    src, texts = _setup(isolated_env)
    fake_api.inject_fault("create", "500", times=2, after_effect=True)  # both chunks
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created == 2
    assert fake_api.request_count("create") == 2  # both chunks adopted, not created again


def test_insufficient_quota_stops_at_once(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """No quota on create: exit 1 with a clear message after a single call."""
    src, _ = _setup(isolated_env)
    fake_api.inject_fault("create", "insufficient_quota", times=50)
    result = bg("grade", src)
    assert result.exit_code == 1, result.output
    assert "quota" in result.output.lower()
    assert "Traceback" not in result.output
    assert fake_api.request_count("create") == 1
    assert fake_api.batches_created == 0


def _fake_chunk_tokens(bg: Invoke, src: Path, folder: Path) -> list[int]:
    """Prompt tokens of each planned chunk as the fake counts them (from a dry run)."""
    dry = bg("grade", src, "--dry-run")
    assert dry.exit_code == 0, dry.output
    (plan,) = (folder / "output").glob("dry-run-d-*")
    return [
        sum(count_prompt_tokens(json.loads(line)["body"]) for line in path.read_text().splitlines())
        for path in sorted(plan.glob("chunk-*.jsonl"))
    ]


def test_enqueued_limit_async_waits_and_resubmits(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A batch failed for the enqueued-token limit is resubmitted later; the limit is learned."""
    src, texts = _setup(isolated_env)
    tokens = _fake_chunk_tokens(bg, src, isolated_env)
    assert len(tokens) == 2
    limit = sum(tokens) - 1  # one chunk fits, two together do not
    assert limit >= max(tokens)
    fake_api.enqueued_token_limit = {MODEL: limit}
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    _assert_graded(isolated_env, texts)
    statuses = [b["status"] for b in fake_api.batches.values()]
    assert statuses.count("completed") == 2
    assert statuses.count("failed") >= 1  # the second chunk was refused at least once
    assert fake_api.max_in_flight_enqueued_tokens[MODEL] <= limit
    assert _learned(home) == {MODEL: limit}


def test_chunk_above_enqueued_limit_fails_then_force_replans(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A chunk bigger than the whole limit fails at once; --force plans chunks that fit."""
    src, texts = _setup(isolated_env, n=4, rows_per_chunk=4)
    tokens = _fake_chunk_tokens(bg, src, isolated_env)
    limit = tokens[0] * 3 // 4  # the chunk alone is over it, half of it is well under
    fake_api.enqueued_token_limit = {MODEL: limit}
    result = bg("grade", src)
    assert result.exit_code == 1, result.output
    assert fake_api.batches_created == 1  # no endless create/fail loop
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    errors = out["llm_error"].to_list()
    assert all(f"exceeds the enqueued-token limit of {limit:,}" in e for e in errors), errors
    assert _learned(home) == {MODEL: limit}
    forced = bg("grade", src, "--force", "--overwrite")
    assert forced.exit_code == 0, forced.output
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created > 2  # the new plan has smaller chunks
    assert [b["status"] for b in fake_api.batches.values()][1:].count("failed") == 0


@pytest.mark.parametrize("kind", ["token_limit", "token_limit_429"])
def test_enqueued_limit_sync_error_waits(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, kind: str
) -> None:
    """A 400 or 429 token_limit_exceeded on create means wait and resubmit, never row failure."""
    src, texts = _setup(isolated_env)
    fake_api.inject_fault("create", kind, times=2, model=MODEL, limit=1_234_567)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created == 2
    assert fake_api.request_count("create") == 4
    assert _learned(home) == {MODEL: 1_234_567}


def test_truncated_download_is_retried(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """An output download cut short is fetched again; the result is complete."""
    src, texts = _setup(isolated_env, n=5, rows_per_chunk=5)
    fake_api.inject_fault("file_content", "truncated")
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    _assert_graded(isolated_env, texts)
    assert fake_api.request_count("file_content") == 2
    assert fake_api.batches_created == 1


def test_output_file_gone_fails_clearly(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A completed batch whose output file is gone (404): a clear error, quickly, no new batch."""
    src, _ = _setup(isolated_env, n=4, rows_per_chunk=4)
    submitted = bg("grade", src, "--detach")
    assert submitted.exit_code == 0, submitted.output
    fake_api.run_to_completion()
    (batch,) = fake_api.batches.values()
    fake_api.file_content_gone.add(batch["output_file_id"])
    result = bg("grade", src)
    assert result.exit_code == 1, result.output
    assert batch["id"] in result.output
    assert "no longer available" in result.output
    assert "Traceback" not in result.output
    assert fake_api.request_count("file_content") <= 3
    assert fake_api.batches_created == 1
