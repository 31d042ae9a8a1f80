"""Batches that strand, statuses nobody told us about, inputs the service cannot see yet,
and the files left at the provider (issue 12), through the CLI against the fake."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.batch_state import DAY
from tests.fakes.judge import judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
HOLD = 10**6  # polls per lifecycle step: a batch that never moves on its own
STRANGE = "queued_for_capacity"  # a status the client does not know


def _texts(n: int) -> list[str]:
    return [f"Answer {i}: bees dance {i + 2} times to point at flowers." for i in range(n)]


def _csv(folder: Path, texts: list[str]) -> Path:
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    return write_table(folder / "d.csv", frame)


def _graded(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / "output" / "d.graded.csv")


def _job_id(home: Path) -> str:
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        return str(db.execute("SELECT id FROM jobs").fetchone()[0])


def _flat(text: str) -> str:
    return " ".join(text.split())


# --- a batch that never ends (run.max_batch_wait_seconds) -------------------------------


def test_stranded_batch_is_cancelled_and_its_rest_resent_only_on_request(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A batch stuck (in a status the client does not know) a day past its creation is
    cancelled at the next poll: what it finished is kept, its other rows are
    ``batch_stuck``, nothing is resubmitted on its own; ``--retry-failed`` sends them."""
    texts = _texts(6)
    src = _csv(isolated_env, texts)
    assert bg("grade", src, "--detach").exit_code == 0
    (batch_id,) = fake_api.batches
    fake_api.requests_per_step = 3
    fake_api.advance(batch_id)  # validating -> in_progress
    fake_api.advance(batch_id)  # three of the six requests run
    fake_api.polls_per_state = HOLD  # and then nothing more happens
    fake_api.cancel_polls = 0
    fake_api.unknown_status = STRANGE
    fake_api.batches[batch_id]["created_at"] -= 2 * DAY  # 26 h is the default limit
    result = bg("jobs", "resume", _job_id(home))
    assert result.exit_code == 1, result.output
    stderr = _flat(result.stderr)
    assert f"Batch {batch_id} has waited" in stderr and "cancelling it" in stderr
    assert fake_api.request_count("cancel") == 1
    assert fake_api.batches_created == 1  # stuck rows are not resubmitted on their own
    out = _graded(isolated_env)
    done = [i for i, e in enumerate(out["llm_error"].to_list()) if e is None]
    assert len(done) == 3
    assert [out["llm_score"][i] for i in done] == [judge_score(USER + texts[i]) for i in done]
    stuck = [e for e in out["llm_error"].to_list() if e is not None]
    assert stuck == ["batch_stuck: the batch did not finish within run.max_batch_wait_seconds"] * 3

    fake_api.polls_per_state = 1
    fake_api.unknown_status = None
    retried = bg("grade", src, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert fake_api.batches_created == 2
    assert _graded(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


def test_unknown_status_is_logged_once_and_waited_on(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A status the client does not know is treated as running and logged once per run,
    however many polls show it (and again in the next run)."""
    texts = _texts(4)
    fake_api.unknown_status = STRANGE
    fake_api.requests_per_step = 1  # four polls in that status
    for run in range(2):
        result = bg("grade", _csv(isolated_env, texts), *(["--force", "--overwrite"] * run))
        assert result.exit_code == 0, result.output
        assert _flat(result.stderr).count(f"Unknown batch status '{STRANGE}'") == 1, run
    assert _graded(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


# --- "cannot find file" after the batch was accepted ------------------------------------


@pytest.mark.parametrize(("invisible", "code"), [(2, 0), (5, 1)])
def test_input_the_service_cannot_see_yet_is_resubmitted_a_bounded_number_of_times(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, invisible: int, code: int
) -> None:
    """A batch accepted, then failed because its (uploaded) input cannot be found, is
    uploaded and created again, three attempts at most; then the chunk fails, saying why."""
    texts = _texts(3)
    fake_api.invisible_uploads = invisible
    result = bg("grade", _csv(isolated_env, texts))
    assert result.exit_code == code, result.output
    attempts = min(invisible + 1, 3)
    assert fake_api.batches_created == attempts
    assert fake_api.request_count("upload") == attempts
    out = _graded(isolated_env)
    if code == 0:
        assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    else:
        assert all("input_file_missing: Cannot find file" in e for e in out["llm_error"])


# --- files left at the provider ----------------------------------------------------------


def test_remote_files_are_deleted_once_results_are_stored(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """By default a batch's input, output and error files are deleted at the provider as
    soon as its results are stored."""
    texts = _texts(3)
    texts[1] = "This one fails [[fail:context_length_exceeded]]"  # an error file too
    result = bg("grade", _csv(isolated_env, texts))
    assert result.exit_code == 1, result.output
    assert fake_api.files == {}
    assert fake_api.request_count("file_delete") == 3


def test_clean_deletes_what_was_left_and_what_could_not_be_deleted(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``run.delete_remote_files`` off the files stay, and a delete that fails is only
    a warning; ``jobs clean`` deletes whatever is left, once."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")
    kept = bg("grade", _csv(isolated_env, _texts(3)))
    assert kept.exit_code == 0, kept.output
    assert len(fake_api.files) == 2  # the input and the output
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "true")
    fake_api.inject_fault("file_delete", "500", times=2)
    (isolated_env / "e.csv").write_bytes((isolated_env / "d.csv").read_bytes() + b"9,Bees.\n")
    failing = bg("grade", isolated_env / "e.csv", "--force")
    assert failing.exit_code == 0, failing.output
    assert "Could not delete file" in _flat(failing.stderr)
    assert len(fake_api.files) == 4  # both left: the delete failed
    cleaned = bg("jobs", "clean", "--json")
    assert cleaned.exit_code == 0, cleaned.output
    assert json.loads(cleaned.stdout)["remote_files_deleted"] == 4
    assert fake_api.files == {}
    again = bg("jobs", "clean", "--json")
    assert json.loads(again.stdout)["remote_files_deleted"] == 0
