"""Every provider call × every fault: the run completes, or stops clearly and resumes later.

Each case injects a burst of three faults (more than the SDK's own two retries) on one
route. The run must either finish with the correct output, or exit 1 with one clear
message and leave a job that ``jobs resume`` completes once the fault is gone. In every
case no batch is created twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.execution.events import SystemClock
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
ROUTES = ["upload", "create", "retrieve", "list", "cancel", "file_content"]
KINDS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"kind": "429", "retry_after_ms": 20},
    "429": {"kind": "429"},
    "500": {"kind": "500"},
    "503": {"kind": "503"},
    "reset": {"kind": "reset"},
    "timeout": {"kind": "timeout", "delay": 1.0},
    "truncated": {"kind": "truncated"},
    "malformed_json": {"kind": "malformed_json"},
}
BURST = 3


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Shorten the runner's own backoff, except where real time must pass (lost creates)."""
    monkeypatch.setenv("BATCHGRADER_API__TIMEOUT_SECONDS", "0.5")
    if "create-timeout" in request.node.name:
        return  # the fake performs the held create after 1 s: the runner must wait for it
    monkeypatch.setattr(SystemClock, "sleep", lambda self, s: time.sleep(min(s, 0.01)))


def _texts(n: int) -> list[str]:
    return [f"Row {i}: glaciers move a few metres a day, sample {i}." for i in range(n)]


def _assert_graded(folder: Path, texts: list[str]) -> None:
    out = pl.read_csv(folder / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == len(texts)


def _job_id(bg: Invoke) -> str:
    listed = bg("jobs", "list", "--all", "--json")
    return str(json.loads(listed.stdout)["jobs"][0]["id"])


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("route", ROUTES)
def test_fault_matrix(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, route: str, kind: str
) -> None:
    """A burst of faults on one call: complete, or fail clearly and resume; no duplicates."""
    texts = _texts(4)
    frame = pl.DataFrame({"id": list(range(4)), "response": texts})
    src = write_table(isolated_env / "d.csv", frame)
    opts = dict(KINDS[kind])
    fault_kind = opts.pop("kind")
    if route == "cancel":
        assert bg("grade", src, "--detach").exit_code == 0
        job = _job_id(bg)
        fake_api.inject_fault(route, fault_kind, times=BURST, **opts)
        result = bg("jobs", "cancel", job)
        if result.exit_code != 0:
            assert result.exit_code == 1, result.output
            assert "Error:" in result.stderr
            assert "Traceback" not in result.output
            fake_api.clear_faults()
            assert bg("jobs", "cancel", job).exit_code == 0
        final = bg("jobs", "resume", job)
        assert final.exit_code in (0, 1), final.output  # cancelled rows are marked, not lost
        out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
        assert out["id"].to_list() == list(range(4))
        assert fake_api.batches_created == 1
        return
    if route == "list":  # listing only happens to resolve a create whose answer was lost
        fake_api.inject_fault("create", "500", after_effect=True)
    fake_api.inject_fault(route, fault_kind, times=BURST, **opts)
    result = bg("grade", src)
    if result.exit_code != 0:
        assert result.exit_code == 1, result.output
        assert "Error:" in result.stderr
        assert "Traceback" not in result.output
        fake_api.clear_faults()
        resumed = bg("jobs", "resume", _job_id(bg))
        assert resumed.exit_code == 0, resumed.output
    _assert_graded(isolated_env, texts)
    assert fake_api.batches_created == 1
