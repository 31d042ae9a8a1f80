"""The input changing under a job, awkward column names, other jobs' graded files, and
retries after ``jobs clean`` (issue 13, items 4, 5, 8 and 9), through the CLI against the
fake Batch API."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _texts(n: int, tag: str = "") -> list[str]:
    return [f"Essay {tag}{i}: sand dunes migrate {i + 4} metres a year." for i in range(n)]


def _csv(path: Path, texts: list[str | None], **extra: list[object]) -> Path:
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts, **extra})
    return write_table(path, frame)


def _scores(texts: list[str]) -> list[int]:
    return [judge_score(USER + t) for t in texts]


def _job_id(home: Path, n: int = -1) -> str:
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        rows = db.execute("SELECT id FROM jobs ORDER BY created_at, rowid").fetchall()
    return str(rows[n][0])


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "output").glob("*.csv"))


# --- the input changed while its batches ran (item 4) -----------------------------------

CHANGES: dict[str, Callable[[list[str]], list[str]]] = {
    "shuffled": lambda t: [t[3], t[0], t[5], t[1], t[4], t[2]],
    "row inserted": lambda t: [*t[:2], "A new essay: dunes sing at dusk.", *t[2:]],
    "row deleted": lambda t: [*t[:2], *t[3:]],
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_input_changed_while_detached_keeps_every_paid_result(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, change: str
) -> None:
    """Rows shuffled, inserted or deleted while the batch ran: the resume never merges by
    position, says what changed, and writes every paid result against the job's own copy
    of the rows it sent (row number, text, result); nothing is paid twice."""
    texts = _texts(6)
    src = _csv(isolated_env / "d.csv", list(texts))
    assert bg("grade", src, "--detach").exit_code == 0
    _csv(src, list(CHANGES[change](texts)))
    result = bg("jobs", "resume", _job_id(home))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert "d.csv changed while job" in message and "nothing paid is lost" in message
    rows_now = len(CHANGES[change](texts))
    assert (f"it had 6 rows and has {rows_now} now" in message) == (rows_now != 6)
    assert _outputs(isolated_env) == ["d.graded.recovered.csv"]
    out = pl.read_csv(isolated_env / "output" / "d.graded.recovered.csv")
    assert out.columns[:2] == ["row", "response"]
    assert out["row"].to_list() == list(range(1, 7))
    assert out["response"].to_list() == texts
    assert out["llm_score"].to_list() == _scores(texts)
    assert out["llm_error"].null_count() == 6
    assert fake_api.batches_created == 1


def test_input_rewritten_after_clean_is_not_resent_by_position(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A retry whose request files were cleaned builds them from the input only if it is
    the file the job graded: a rewritten file is refused in one line, nothing is sent."""
    texts = _texts(4)
    src = _csv(isolated_env / "d.csv", list(texts))
    fake_api.fail_requests["row-000001"] = (500, "server_error", "boom")
    assert bg("grade", src).exit_code == 1
    fake_api.fail_requests.clear()
    assert bg("jobs", "clean").exit_code == 0
    _csv(src, list(texts[::-1]))
    result = bg("jobs", "retry", _job_id(home))
    assert result.exit_code == 2, result.output
    assert "changed since job" in result.stderr and "cannot be built again" in result.stderr
    assert fake_api.batches_created == 1


# --- awkward column names (item 5) ------------------------------------------------------


def test_columns_named_like_internal_ones_are_kept(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Input columns named ``_row``, ``_row_2``, ``_blank``, ``_fields`` or ``llm_fields``
    are graded and come back with their values, whatever batchgrader uses inside."""
    texts = _texts(3)
    extra: dict[str, list[object]] = {
        name: [f"{name}-{i}" for i in range(3)]
        for name in ("_row", "_row_2", "_blank", "_fields", "llm_fields")
    }
    src = _csv(isolated_env / "d.csv", list(texts), **extra)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out.columns == [
        "id",
        "response",
        *extra,
        "llm_score",
        "llm_response",
        "llm_error",
    ]
    for name, values in extra.items():
        assert out[name].to_list() == values, name
    assert out["llm_score"].to_list() == _scores(texts)


# --- another job's graded file (item 8) -------------------------------------------------


def test_resume_never_writes_over_another_jobs_graded_file(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """Job A (x/in.csv) detached; job B (y/in.csv) writes output/in.graded.csv; resuming A
    writes a timestamped sibling and leaves B's file byte for byte."""
    a_texts, b_texts = _texts(3, "a"), _texts(3, "b")
    a = _csv(isolated_env / "x" / "in.csv", list(a_texts))
    b = _csv(isolated_env / "y" / "in.csv", list(b_texts))
    assert bg("grade", a, "--detach").exit_code == 0
    job_a = _job_id(home)
    assert bg("grade", b).exit_code == 0
    theirs = (isolated_env / "output" / "in.graded.csv").read_bytes()
    resumed = bg("jobs", "resume", job_a)
    assert resumed.exit_code == 0, resumed.output
    assert (isolated_env / "output" / "in.graded.csv").read_bytes() == theirs
    (mine,) = [n for n in _outputs(isolated_env) if n != "in.graded.csv"]
    assert mine.startswith("in.graded-")
    assert pl.read_csv(isolated_env / "output" / mine)["llm_score"].to_list() == _scores(a_texts)


def test_retry_never_writes_over_another_jobs_graded_file(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """Job A's graded file was moved away and job B wrote the same default name since:
    ``jobs retry A`` writes beside it, never over B's file (no ``--overwrite`` given)."""
    a_texts, b_texts = _texts(3, "a"), _texts(3, "b")
    a = _csv(isolated_env / "x" / "in.csv", list(a_texts))
    b = _csv(isolated_env / "y" / "in.csv", list(b_texts))
    fake_api.fail_requests["row-000001"] = (500, "server_error", "boom")
    assert bg("grade", a).exit_code == 1
    job_a = _job_id(home)
    fake_api.fail_requests.clear()
    (isolated_env / "output" / "in.graded.csv").rename(isolated_env / "a-was-here.csv")
    assert bg("grade", b).exit_code == 0
    theirs = (isolated_env / "output" / "in.graded.csv").read_bytes()
    retried = bg("jobs", "retry", job_a)
    assert retried.exit_code == 0, retried.output
    assert (isolated_env / "output" / "in.graded.csv").read_bytes() == theirs
    (mine,) = [n for n in _outputs(isolated_env) if n != "in.graded.csv"]
    assert pl.read_csv(isolated_env / "output" / mine)["llm_score"].to_list() == _scores(a_texts)


# --- jobs clean, then the retry it suggests (item 9) ------------------------------------


def test_clean_then_retry_failed_resends_only_failed_rows(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``jobs clean`` removed a failed job's request files, ``--retry-failed`` builds
    the failed rows' requests again from the unchanged input (never a blank row) and
    updates the job's own graded file."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")  # read what was sent
    texts: list[str | None] = list(_texts(9))
    texts[2] = "   "  # blank, inside the first chunk's range: never sent
    src = _csv(isolated_env / "d.csv", texts)
    (isolated_env / "batchgrader.toml").write_text(
        "[chunking]\nsplit_row_limit = 4\n[run]\nmax_simultaneous_batches = 1\n"
    )
    fake_api.max_requests_per_batch = 3  # the first chunk (4 requests) fails validation
    first = bg("grade", src, "--json")
    assert first.exit_code == 1, first.output
    cleaned = bg("jobs", "clean", "--json")
    assert cleaned.exit_code == 0, cleaned.output
    assert len(json.loads(cleaned.stdout)["kept_for_retry"]) == 1
    fake_api.max_requests_per_batch = 50_000
    retried = bg("grade", src, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert _outputs(isolated_env) == ["d.graded.csv"]
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    sent = [t for t in texts if t and t.strip()]
    assert out.filter(pl.col("llm_error").is_null())["llm_score"].to_list() == _scores(sent)
    assert out["llm_error"].to_list()[2] == "skipped: empty text"
    resent = [
        json.loads(line)["custom_id"]
        for batch in list(fake_api.batches.values())[1:]
        for line in fake_api.files[batch["input_file_id"]][1].decode().splitlines()
    ]
    assert sorted(resent) == [f"row-{i:06d}" for i in range(9) if i != 2]  # each once
