"""Never pay twice for the same request (issue 13, item 3).

A job's identity is what decides the answers (the input's bytes and the requests), not
how the work is cut or scheduled; and a row whose exact request was answered before, by
any job, is not sent again unless ``--force``: its paid answer is reused and the
summary says how many rows that was and what those answers cost.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


@pytest.fixture(autouse=True)
def _keep_remote_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the batches' files at the fake, to read what each batch sent."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")


def _texts(n: int, tag: str = "") -> list[str]:
    return [f"Reply {tag}{i}: the moon is about {i + 380} thousand km away." for i in range(n)]


def _csv(folder: Path, name: str, texts: list[str]) -> Path:
    ids = [int(t.split(":")[0].split()[-1].lstrip("n")) for t in texts]
    return write_table(folder / name, pl.DataFrame({"id": ids, "response": texts}))


def _summary(result: Result) -> dict[str, Any]:
    report, _ = json.JSONDecoder().raw_decode(result.stdout)
    (summary,) = report["files"]
    assert isinstance(summary, dict)
    return summary


def _check(path: Path, texts: list[str]) -> None:
    """The graded file holds each text with its own score, in the input's order."""
    out = pl.read_csv(path)
    assert out["response"].to_list() == texts
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == len(texts)


def _sent(fake: FakeBatchAPI, batch: int = -1) -> list[str]:
    """The texts a batch sent (the last one by default)."""
    input_id = list(fake.batches.values())[batch]["input_file_id"]
    lines = fake.files[input_id][1].decode().splitlines()
    return [json.loads(line)["body"]["messages"][-1]["content"][len(USER) :] for line in lines]


def _settings(folder: Path, text: str) -> None:
    (folder / "batchgrader.toml").write_text(text)


# --- identity: what decides the answers -------------------------------------------------


def test_changing_how_the_work_is_cut_reattaches(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Interrupted, then re-run with another chunk size, chunk count and enqueued-token cap:
    the run re-attaches to its batches, pays nothing twice, writes no timestamped file."""
    texts = _texts(6)
    src = _csv(isolated_env, "d.csv", texts)
    _settings(isolated_env, "[chunking]\nsplit_row_limit = 3\n")
    assert bg("grade", src, "--detach").exit_code == 0
    assert fake_api.batches_created == 2
    _settings(
        isolated_env,
        "[chunking]\nsplit_row_limit = 2\nsplit_token_limit = 90000\nforce_chunk_count = 3\n"
        '[run.max_enqueued_tokens]\n"gpt-4.1-mini" = 123456\n',
    )
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 2
    assert sorted(p.name for p in (isolated_env / "output").iterdir()) == ["d.graded.csv"]
    _check(isolated_env / "output" / "d.graded.csv", texts)


# --- reuse: the same request is answered once --------------------------------------------


def test_same_rows_in_another_order_are_not_sent_again(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The rows of a graded file, shuffled into another file: nothing is sent, each row
    gets its own paid answer back, and the summary counts them and what they cost."""
    texts = _texts(6)
    first = bg("grade", _csv(isolated_env, "a.csv", texts), "--json")
    assert first.exit_code == 0, first.output
    shuffled = random.Random(7).sample(texts, len(texts))
    result = bg("grade", _csv(isolated_env, "b.csv", shuffled), "--json")
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 1
    _check(isolated_env / "output" / "b.graded.csv", shuffled)
    summary = _summary(result)
    assert (summary["reused"], summary["graded"], summary["chunks"]) == (6, 6, 0)
    assert summary["cost"] is None  # nothing spent by this job
    assert Decimal(summary["reused_cost"]) == Decimal(_summary(first)["cost"]) > 0
    human = bg("grade", _csv(isolated_env, "c.csv", texts[::-1]))
    assert human.exit_code == 0, human.output
    assert "6 row(s) of c.csv were answered before with the same request" in human.stderr
    assert "6 row(s) reused answers paid for before" in human.stdout
    assert fake_api.batches_created == 1


def test_a_superset_after_a_chunk_size_change_sends_only_new_rows(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A file holding the graded rows and new ones, cut in other chunk sizes: only the new
    rows are sent, and every row gets its answer in place."""
    old, new = _texts(6), _texts(3, tag="n")
    _settings(isolated_env, "[chunking]\nsplit_row_limit = 2\n")
    assert bg("grade", _csv(isolated_env, "a.csv", old)).exit_code == 0
    assert fake_api.batches_created == 3
    mixed = [old[0], new[0], *old[1:4], new[1], *old[4:], new[2]]
    _settings(isolated_env, "[chunking]\nsplit_row_limit = 4\n")
    result = bg("grade", _csv(isolated_env, "b.csv", mixed), "--json")
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 4
    assert sorted(_sent(fake_api)) == sorted(new)
    _check(isolated_env / "output" / "b.graded.csv", mixed)
    summary = _summary(result)
    assert (summary["reused"], summary["graded"], summary["chunks"]) == (6, 9, 1)
    shown = bg("jobs", "show", summary["job_id"], "--json")
    assert shown.exit_code == 0, shown.output
    chunks = json.loads(shown.stdout)["chunks"]
    assert [(c["requests"], c["status"], c["batch_id"] is None) for c in chunks] == [
        (3, "done", False),
        *[(2, "done", True)] * 3,
    ]  # the new rows' batch, then the answers reused from each of the first job's chunks


def test_force_pays_again(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """``--force`` sends every row again, even rows answered before."""
    texts = _texts(4)
    assert bg("grade", _csv(isolated_env, "a.csv", texts)).exit_code == 0
    shuffled = texts[::-1]
    result = bg("grade", _csv(isolated_env, "b.csv", shuffled), "--force", "--json")
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 2
    assert sorted(_sent(fake_api)) == sorted(texts)
    assert _summary(result)["reused"] == 0
    _check(isolated_env / "output" / "b.graded.csv", shuffled)


def test_a_row_answered_with_an_error_is_sent_again(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Only answers without an error are reused: a row that failed is sent again."""
    texts = _texts(4)
    fake_api.fail_requests["row-000002"] = (500, "server_error", "boom")
    assert bg("grade", _csv(isolated_env, "a.csv", texts)).exit_code == 1
    fake_api.fail_requests.clear()
    result = bg("grade", _csv(isolated_env, "b.csv", texts[::-1]), "--json")
    assert result.exit_code == 0, result.output
    assert _sent(fake_api) == [texts[2]]
    assert _summary(result)["reused"] == 3
    _check(isolated_env / "output" / "b.graded.csv", texts[::-1])


def test_another_request_for_the_same_text_is_sent(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The same texts asked with another request (here a different output limit) are
    another request: they are sent."""
    texts = _texts(3)
    assert bg("grade", _csv(isolated_env, "a.csv", texts)).exit_code == 0
    result = bg("grade", _csv(isolated_env, "b.csv", texts[::-1]), "--max-tokens", "300")
    assert result.exit_code == 0, result.output
    assert sorted(_sent(fake_api)) == sorted(texts)


def test_clean_forgets_the_answers_it_removes(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """``jobs clean`` removes a finished job's stored answers and their index entries; a
    job that reused them keeps its own copy (its graded file is complete)."""
    texts = _texts(3)
    assert bg("grade", _csv(isolated_env, "a.csv", texts)).exit_code == 0
    assert bg("grade", _csv(isolated_env, "b.csv", texts[::-1])).exit_code == 0
    assert fake_api.batches_created == 1
    cleaned = bg("jobs", "clean", "--json")
    assert cleaned.exit_code == 0, cleaned.output
    assert len(json.loads(cleaned.stdout)["removed"]) == 2
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
    again = bg("grade", _csv(isolated_env, "c.csv", texts[1:]))
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == 2
