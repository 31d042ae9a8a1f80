"""``jobs`` commands, --detach, resume and --retry-failed against the fake server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _csv(path: Path, texts: list[str]) -> Path:
    pl.DataFrame({"id": list(range(len(texts))), "response": texts}).write_csv(path)
    return path


def _texts(n: int) -> list[str]:
    return [f"Reply {i}: water boils at {90 + i} degrees at altitude." for i in range(n)]


def _job_id(bg: Invoke) -> str:
    listed = bg("jobs", "list", "--all", "--json")
    assert listed.exit_code == 0, listed.output
    return str(json.loads(listed.stdout)["jobs"][0]["id"])


def test_detach_then_resume(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """--detach submits and exits; jobs resume collects without a new batch."""
    texts = _texts(6)
    src = _csv(isolated_env / "d.csv", texts)
    result = bg("grade", src, "--detach", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["status"] == "submitted"
    assert fake_api.batches_created == 1
    assert not (isolated_env / "output" / "d.graded.csv").exists()
    job_id = _job_id(bg)
    shown = bg("jobs", "show", job_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["chunks"][0]["batch_id"]
    resumed = bg("jobs", "resume", job_id)
    assert resumed.exit_code == 0, resumed.output
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert fake_api.batches_created == 1


def test_retry_failed_sends_only_failed_rows(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After per-request failures, --retry-failed resends only those rows and updates the
    job's own graded file in place."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")  # to read them here
    texts = _texts(8)
    src = _csv(isolated_env / "d.csv", texts)
    fake_api.fail_requests["row-000002"] = (500, "server_error", "boom")
    fake_api.fail_requests["row-000005"] = (500, "server_error", "boom")
    first = bg("grade", src)
    assert first.exit_code == 1, first.output
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["llm_error"].to_list()[2].startswith("server_error")
    fake_api.fail_requests.clear()
    retried = bg("grade", src, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert fake_api.batches_created == 2
    second_input = list(fake_api.batches.values())[-1]["input_file_id"]
    lines = fake_api.files[second_input][1].decode().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in lines) == ["row-000002", "row-000005"]
    (final,) = (isolated_env / "output").glob("d.graded*.csv")
    assert final.name == "d.graded.csv"
    out = pl.read_csv(final)
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == 8
    assert not list((isolated_env / "output").glob("*.errors.log"))


def test_jobs_list_empty(bg: Invoke) -> None:
    """With no job, jobs list says so and exits 0."""
    result = bg("jobs", "list")
    assert result.exit_code == 0, result.output
    assert "No jobs" in result.stdout


def test_unknown_job_is_exit_2(bg: Invoke) -> None:
    """jobs show of an unknown id is a usage error."""
    result = bg("jobs", "show", "nope")
    assert result.exit_code == 2
    assert "No job 'nope'" in result.stderr


def test_cancel_keeps_finished_results(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """jobs cancel cancels the running batch; resume then writes partial output."""
    src = _csv(isolated_env / "d.csv", _texts(4))
    assert bg("grade", src, "--detach").exit_code == 0
    job_id = _job_id(bg)
    cancelled = bg("jobs", "cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert any(c[1].endswith("/cancel") for c in fake_api.calls)
    resumed = bg("jobs", "resume", job_id)
    assert resumed.exit_code == 1, resumed.output
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out.height == 4
    assert all(e.startswith("batch_cancelled") for e in out["llm_error"].to_list())


def test_rerun_after_clean_reports_from_the_graded_file(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A finished job whose files jobs clean removed is summarised from its output."""
    texts = [*_texts(4), "   "]
    src = _csv(isolated_env / "d.csv", texts)
    first = bg("grade", src, "--json")
    assert first.exit_code == 0, first.output
    expected = json.loads(first.stdout)["files"][0]
    assert bg("jobs", "clean").exit_code == 0
    again = bg("grade", src, "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)["files"][0]
    for key in ("status", "graded", "failed", "skipped", "invalid_answers", "score_counts"):
        assert summary[key] == expected[key], key
    assert (summary["graded"], summary["skipped"]) == (4, 1)
    assert fake_api.batches_created == 1

    graded = isolated_env / "output" / "d.graded.csv"
    pl.read_csv(graded).drop("llm_score").write_csv(graded)  # edited by hand since
    broken = bg("grade", src)
    assert broken.exit_code == 2, broken.output
    assert "cannot be read back" in broken.stderr and "--force" in broken.stderr
    assert fake_api.batches_created == 1


def test_clean_removes_finished_job_files(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """jobs clean removes a finished job's folder once its output is written."""
    src = _csv(isolated_env / "d.csv", _texts(3))
    assert bg("grade", src).exit_code == 0
    job_id = _job_id(bg)
    assert (home / "data" / "jobs" / job_id).is_dir()
    assert bg("jobs", "clean").exit_code == 0
    assert not (home / "data" / "jobs" / job_id).exists()
