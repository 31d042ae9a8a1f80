"""The two seams take a newcomer without a change in the core (issue 15).

``memory`` (tests/seams/memory_provider.py) is a provider shaped unlike OpenAI and
Anthropic: inline requests, its own line format and token counting, three requests a
batch. ``SerialExecutor`` (tests/seams/serial_executor.py) is a second row executor.
Neither is known to ``batchgrader/``: the provider is registered by name, the executor
plugged into a session.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.errors import Interrupted
from batchgrader.execution.events import Identity
from batchgrader.execution.run import Grader
from batchgrader.execution.session import GradeOptions, Session, open_session
from batchgrader.ledger.records import UsageEvent
from batchgrader.ledger.store import Ledger
from batchgrader.paths import ledger_db
from batchgrader.planning.spec import request_spec
from batchgrader.providers import names
from batchgrader.settings.loading import load_settings
from tests.seams import memory_provider as memory
from tests.seams.serial_executor import SerialExecutor

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
TEXTS = [f"Answer {i}: water boils at {90 + i} degrees up here." for i in range(7)]


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``memory`` registered as a real provider package would be; a fresh service."""
    monkeypatch.setitem(names.PROVIDERS, memory.NAME, memory.WHERE)
    monkeypatch.setenv("BATCHGRADER_REQUEST__PROVIDER", memory.NAME)
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_INTERVAL_SECONDS", "0.01")
    memory.SERVICE.reset()
    yield
    memory.SERVICE.reset()


def _csv(folder: Path, texts: list[str]) -> Path:
    path = folder / "d.csv"
    pl.DataFrame({"id": list(range(len(texts))), "response": texts}).write_csv(path)
    return path


def _scores(folder: Path) -> list[int | None]:
    return pl.read_csv(folder / "output" / "d.graded.csv")["llm_score"].to_list()


def test_a_new_provider_grades_a_file_in_batches(bg: Invoke, isolated_env: Path) -> None:
    """Three requests a batch: 7 rows are 3 batches; every row scored by the new judge."""
    result = bg("grade", _csv(isolated_env, TEXTS), "--json")
    assert result.exit_code == 0, result.output
    assert _scores(isolated_env) == [memory.score_of(USER + t) for t in TEXTS]
    batches = list(memory.SERVICE.batches.values())
    assert [len(b.asks) for b in batches] == [3, 3, 1]
    assert memory.SERVICE.asked() == [f"row-{i:06d}" for i in range(7)]
    assert sorted(memory.SERVICE.deleted) == sorted(b.id for b in batches)
    assert not memory.SERVICE.direct_calls

    costs = json.loads(bg("costs", "--by", "provider", "--json").stdout)
    (group,) = costs["groups"]
    assert group["key"] == memory.NAME
    assert group["spent"]["input_tokens"] == memory.SERVICE.billed_input()
    assert group["committed"]["total_tokens"] == 0


def test_a_new_provider_is_never_paid_twice_for_a_finished_file(
    bg: Invoke, isolated_env: Path
) -> None:
    path = _csv(isolated_env, TEXTS)
    assert bg("grade", path).exit_code == 0
    before = len(memory.SERVICE.batches)
    again = bg("grade", path, "--overwrite")
    assert again.exit_code == 0, again.output
    assert len(memory.SERVICE.batches) == before


def test_a_new_provider_refusal_is_the_row_error(bg: Invoke, isolated_env: Path) -> None:
    texts = [*TEXTS[:3], f"please {memory.REFUSE}", *TEXTS[3:]]
    result = bg("grade", _csv(isolated_env, texts))
    assert result.exit_code == 1  # a row failed
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["llm_score"][3] is None and out["llm_error"][3].startswith("refused")
    assert out["llm_score"].drop_nulls().len() == len(TEXTS)


def test_a_new_provider_in_direct_mode(bg: Invoke, isolated_env: Path) -> None:
    result = bg("grade", _csv(isolated_env, TEXTS), "--mode", "direct")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"is judged in memory: the requests go to {memory.ENDPOINT}" in said
    assert "Tokens are words, counted exactly." in said
    assert sorted(memory.SERVICE.direct_users()) == sorted(USER + t for t in TEXTS)
    assert not memory.SERVICE.batches
    assert _scores(isolated_env) == [memory.score_of(USER + t) for t in TEXTS]


def test_an_unknown_provider_is_refused_before_anything(
    bg: Invoke, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHGRADER_REQUEST__PROVIDER", "nowhere")
    result = bg("grade", _csv(isolated_env, TEXTS))
    assert result.exit_code == 2
    assert "'nowhere' is not a provider: use auto, openai, anthropic, memory" in " ".join(
        result.output.split()
    )


# --- the executor seam ------------------------------------------------------------------


def _grade(path: Path, executor: Callable[[Session], SerialExecutor] | None = None) -> None:
    settings = load_settings({"run.mode": "direct"}).settings
    spec = request_spec(settings)
    with (
        Ledger.open(ledger_db(settings.state_dir())) as ledger,
        open_session(
            settings,
            spec,
            ledger,
            Identity(api_key_prefix="mem-...0001", base_url_host="judge"),
            on_event=lambda event: None,
            say=lambda line: None,
            confirm=None,
        ) as session,
    ):
        if executor is not None:
            session.direct_executor = executor
        Grader(session).grade([path], GradeOptions(overwrite=True))


def _usage() -> list[UsageEvent]:
    settings = load_settings({}).settings
    with Ledger.open(ledger_db(settings.state_dir())) as ledger:
        return ledger.usage_events()


def test_a_second_executor_answers_the_direct_rows(isolated_env: Path) -> None:
    """One row at a time, in input order; the merge reads its answers like any other."""
    made: list[SerialExecutor] = []

    def serial(session: Session) -> SerialExecutor:
        made.append(SerialExecutor(session))
        return made[-1]

    _grade(_csv(isolated_env, TEXTS), serial)
    assert [cid for x in made for cid in x.sent] == [f"row-{i:06d}" for i in range(7)]
    assert memory.SERVICE.direct_users() == [USER + t for t in TEXTS]
    assert _scores(isolated_env) == [memory.score_of(USER + t) for t in TEXTS]
    events = _usage()
    assert {e.executor for e in events} == {"serial"}
    assert sum(e.requests_completed for e in events) == 7


def test_executors_take_over_each_others_chunks_without_paying_twice(
    isolated_env: Path,
) -> None:
    """Interrupted after 4 rows, the serial executor's answers are kept; the direct
    executor sends only the 3 rows without one, and the ledger counts each row once."""
    path = _csv(isolated_env, TEXTS)
    with pytest.raises(Interrupted):
        _grade(path, lambda session: SerialExecutor(session, stop_after=4))
    assert len(memory.SERVICE.direct_calls) == 4
    _grade(path)
    assert sorted(memory.SERVICE.direct_users()) == sorted(USER + t for t in TEXTS)
    assert _scores(isolated_env) == [memory.score_of(USER + t) for t in TEXTS]
    events = _usage()
    assert sum(e.requests_completed for e in events) == 7
    assert sum(e.input_tokens for e in events) == memory.SERVICE.billed_input()
