"""Every Anthropic call × every fault: the run completes, or stops clearly and resumes.

The same matrix the OpenAI path passes (``test_fault_matrix.py``): a burst of three
faults on one route of the fake Anthropic API. The run must either finish with the
correct output, or exit 1 with one clear message and leave a job that ``jobs resume``
completes once the fault is gone. In every case no batch is created twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from batchgrader.execution.events import SystemClock
from tests.anthropic_cli import (
    MODEL,
    Invoke,
    assert_scores,
    graded,
    job_id,
    texts,
    write_input,
)
from tests.fakes.anthropic_api import FakeAnthropicAPI

ROUTES = ["count_tokens", "create", "retrieve", "list", "cancel", "results", "delete"]
KINDS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"kind": "rate_limit_error", "retry_after_ms": 20},
    "529": {"kind": "overloaded_error"},
    "500": {"kind": "api_error"},
    "reset": {"kind": "reset"},
    "timeout": {"kind": "timeout", "delay": 1.0},
    "truncated": {"kind": "truncated"},
    "lost": {"kind": "lost"},  # performed, then the connection drops before the answer
}
BURST = 3


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Shorten the runner's own backoff, except where real time must pass (a held create)."""
    monkeypatch.setenv("BATCHGRADER_API__TIMEOUT_SECONDS", "0.5")
    if "create-timeout" in request.node.name:
        # The fake performs the held create after 1 s: the runner's one extra wait for a
        # lost create to show up (min(30 s, api.retry_max_wait_seconds)) must cover it.
        monkeypatch.setenv("BATCHGRADER_API__RETRY_MAX_WAIT_SECONDS", "2")
        return
    monkeypatch.setenv("BATCHGRADER_API__RETRY_MAX_WAIT_SECONDS", "0.01")
    monkeypatch.setattr(SystemClock, "sleep", lambda self, s: time.sleep(min(s, 0.01)))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("route", ROUTES)
def test_fault_matrix(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, route: str, kind: str
) -> None:
    """A burst of faults on one call: complete, or fail clearly and resume; no duplicates."""
    rows = texts(4)
    src = write_input(isolated_env, rows)
    opts = dict(KINDS[kind])
    fault_kind = opts.pop("kind")
    if route == "cancel":
        fake_anthropic.polls_per_state = 10**6  # still running when cancelled
        assert bg("grade", src, "--model", MODEL, "--detach").exit_code == 0
        job = job_id(bg)
        fake_anthropic.fail_next(route, fault_kind, times=BURST, **opts)
        result = bg("jobs", "cancel", job)
        if result.exit_code != 0:
            _assert_clear_failure(result.exit_code, result.stderr, result.output)
            fake_anthropic.clear_faults()
            assert bg("jobs", "cancel", job).exit_code == 0
        fake_anthropic.polls_per_state = 1
        final = bg("jobs", "resume", job)
        assert final.exit_code in (0, 1), final.output  # cancelled rows are marked, not lost
        assert graded(isolated_env)["id"].to_list() == list(range(4))
        assert fake_anthropic.batches_created == 1
        return
    if route == "list":  # listing only happens to resolve a create whose answer was lost
        fake_anthropic.fail_next("create", "api_error", after_effect=True)
    fake_anthropic.fail_next(route, fault_kind, times=BURST, **opts)
    result = bg("grade", src, "--model", MODEL)
    if result.exit_code != 0:
        _assert_clear_failure(result.exit_code, result.stderr, result.output)
        fake_anthropic.clear_faults()
        resumed = bg("jobs", "resume", job_id(bg))
        assert resumed.exit_code == 0, resumed.output
    assert_scores(graded(isolated_env), rows)
    assert fake_anthropic.batches_created == 1


def _assert_clear_failure(code: int, stderr: str, output: str) -> None:
    assert code == 1, output
    assert "Error:" in stderr
    assert "Traceback" not in output


def test_lost_create_answer_adopts_the_batch(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """The create is performed, then the connection drops: the batch is found and adopted."""
    rows = texts(5)
    src = write_input(isolated_env, rows)
    fake_anthropic.fail_next("create", "lost")
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.request_count("create") == 1
    assert fake_anthropic.request_count("list") >= 1
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)
