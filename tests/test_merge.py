"""The final merge: row results read back a window at a time and zipped onto the input."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.execution import merge
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _texts(n: int, blank: set[int]) -> list[str]:
    return ["  " if i in blank else f"Answer {i}: the tide turns twice a day." for i in range(n)]


def _csv(path: Path, texts: list[str]) -> Path:
    pl.DataFrame({"id": list(range(len(texts))), "response": texts}).write_csv(path)
    return path


def _expected_scores(texts: list[str]) -> list[int | None]:
    return [judge_score(USER + t) if t.strip() else None for t in texts]


def test_windows_keep_input_order_and_the_latest_result(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunks and retried rows that straddle several windows merge back row for row."""
    monkeypatch.setattr(merge, "WINDOW_ROWS", 4)
    monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", "5")
    blank = {3, 4, 11, 22}
    texts = _texts(23, blank)
    src = _csv(isolated_env / "d.csv", texts)
    for row in (2, 7, 12):  # in three windows, 7 and 12 on a window's edge
        fake_api.fail_requests[f"row-{row:06d}"] = (500, "server_error", "boom")

    first = bg("grade", src, "--json")
    assert first.exit_code == 1, first.output
    summary = json.loads(first.stdout)["files"][0]
    assert (summary["graded"], summary["failed"], summary["skipped"]) == (16, 3, 4)
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    errors = out["llm_error"].to_list()
    assert [i for i, e in enumerate(errors) if e and e.startswith("server_error")] == [2, 7, 12]
    assert [i for i, e in enumerate(errors) if e == "skipped: empty text"] == sorted(blank)

    fake_api.fail_requests.clear()
    retried = bg("grade", src, "--retry-failed", "--overwrite", "--json")
    assert retried.exit_code == 0, retried.output
    summary = json.loads(retried.stdout)["files"][0]
    assert (summary["graded"], summary["failed"]) == (19, 0)
    expected = _expected_scores(texts)
    assert sum(summary["score_counts"].values()) == 19
    for score, n in summary["score_counts"].items():
        assert n == expected.count(int(score))
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["id"].to_list() == list(range(23))
    assert out["llm_score"].to_list() == expected
    assert out["llm_error"].to_list() == [
        "skipped: empty text" if i in blank else None for i in range(23)
    ]


def test_regrading_a_graded_file_replaces_its_result_columns(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A graded file graded again gets this run's result columns, once, and a warning."""
    texts = _texts(6, blank={1})
    src = _csv(isolated_env / "d.csv", texts)
    assert bg("grade", src).exit_code == 0
    graded = isolated_env / "output" / "d.graded.csv"
    stale = pl.read_csv(graded).with_columns(pl.lit(9).alias("llm_score"))
    stale.write_csv(isolated_env / "again.csv")

    with caplog.at_level(logging.WARNING, logger="batchgrader"):
        again = bg("grade", isolated_env / "again.csv")
    assert again.exit_code == 0, again.output
    assert "already has llm_score, llm_response, llm_error" in caplog.text
    out = pl.read_csv(isolated_env / "output" / "again.graded.csv")
    assert out.columns == ["id", "response", "llm_score", "llm_response", "llm_error"]
    assert out["llm_score"].to_list() == _expected_scores(texts)


def test_merge_staging_is_replaced_and_removed(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """Row files left by a crash during a merge are not read; none are left behind."""
    texts = _texts(5, blank=set())
    src = _csv(isolated_env / "d.csv", texts)
    assert bg("grade", src).exit_code == 0
    (job,) = (home / "data" / "jobs").iterdir()
    assert not (job / "aligned").exists()
    leftover = job / "aligned"
    leftover.mkdir()
    pl.DataFrame({"llm_score": [1] * 99}).write_parquet(leftover / "rows-000000000099.parquet")

    again = bg("grade", src, "--json")  # finished job: summarised from its stored results
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)["files"][0]
    assert (summary["status"], summary["graded"]) == ("done", 5)
    assert sum(summary["score_counts"].values()) == 5
    assert not leftover.exists()
    assert fake_api.batches_created == 1
