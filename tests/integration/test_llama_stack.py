"""``grade`` end to end against a real llama-stack 0.7.3 server (issue 12).

batchgrader talks to llama-stack's own ``/v1/files`` and ``/v1/batches`` over HTTP with the
openai SDK; llama-stack runs each request through its remote::openai provider, which is the
test's fake chat endpoint, so every score and token is known in advance.

Direct mode calls its ``/v1/chat/completions``; a second llama-stack with no files or
batches APIs (``run-inference.yaml``) answers the Batch API as vLLM does, with FastAPI's
404, for ``--mode auto``.

What llama-stack does differently from OpenAI (docs/servers/llama-stack.md): model ids are
``openai/<model>``; a success line's ``response.body`` is a JSON *string*; an error line is
``{"id", "custom_id", "error": {"type": "request_failed", "message"}}`` with no ``response``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import polars as pl
import pytest
from typer.testing import Result

from batchgrader import paths
from batchgrader.ledger.store import Ledger, UsageEvent
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import (
    count_completion_tokens,
    count_prompt_tokens,
    judge_answer,
    judge_score,
)
from tests.helpers import write_table
from tests.integration.llama_stack_server import MODEL, LlamaStack

pytestmark = pytest.mark.integration

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
ROWS = 60


def _texts(n: int) -> list[str]:
    return [
        f"Answer {i}: the tide turns {i % 4 + 1} times a day at harbour {i * 3}." for i in range(n)
    ]


def _grade(bg: Invoke, folder: Path, texts: list[str]) -> Result:
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    src = write_table(folder / "d.csv", frame)
    return bg("grade", src, "--model", MODEL, "--json")


def _summary(result: Result) -> dict[str, Any]:
    # Exit 1 in --json mode appends an error envelope: read the first document.
    report, _ = json.JSONDecoder().raw_decode(result.stdout)
    (summary,) = report["files"]
    assert isinstance(summary, dict)
    return summary


def _graded(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / "output" / "d.graded.csv", infer_schema_length=None)


def _upstream_chats(fake: FakeBatchAPI) -> list[dict[str, Any]]:
    """The chat requests llama-stack sent to the fake and the fake answered with 200."""
    return [c.payload for c in fake.calls if c.route == "chat" and c.status == 200]


def _events(home: Path) -> list[UsageEvent]:
    ledger = Ledger.open(paths.ledger_db(home / "data"))
    try:
        return ledger.usage_events()
    finally:
        ledger.close()


def test_grade_60_rows_in_three_batches_through_llama_stack(
    bg: Invoke, llama_api: LlamaStack, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """60 rows in three batches: exit 0, every row scored by the judge, usage in the ledger."""
    (isolated_env / "batchgrader.toml").write_text(
        "[chunking]\nsplit_row_limit = 24\n", encoding="utf-8"
    )
    texts = _texts(ROWS)
    result = _grade(bg, isolated_env, texts)
    out = _graded(isolated_env) if (isolated_env / "output" / "d.graded.csv").exists() else None
    errors = [] if out is None else out["llm_error"].drop_nulls().unique().to_list()[:5]
    assert result.exit_code == 0, f"errors in the graded file: {errors}\n{result.output}"
    assert out is not None
    assert out["id"].to_list() == list(range(ROWS))
    assert out["llm_error"].null_count() == ROWS, errors
    assert out["llm_score"].dtype.is_integer()
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    summary = _summary(result)
    assert (summary["graded"], summary["failed"], summary["chunks"]) == (ROWS, 0, 3)

    # llama-stack called the judge once per row; the ledger holds exactly what it reported.
    chats = _upstream_chats(fake_api)
    assert len(chats) == ROWS
    input_tokens = sum(count_prompt_tokens(body) for body in chats)
    output_tokens = sum(
        count_completion_tokens(judge_answer(body), body["model"]) for body in chats
    )
    events = _events(home)
    assert len(events) == 3
    assert sum(e.requests_completed for e in events) == ROWS
    assert sum(e.requests_failed for e in events) == 0
    assert sum(e.input_tokens for e in events) == input_tokens == summary["input_tokens"]
    assert sum(e.output_tokens for e in events) == output_tokens == summary["output_tokens"]
    assert sum(e.total_tokens for e in events) == input_tokens + output_tokens
    assert all(e.model.endswith("gpt-4.1-mini") and not e.committed for e in events)
    with httpx2.Client(base_url=llama_api.base_url, timeout=10) as client:
        for event in events:
            batch = client.get(f"/batches/{event.batch_id}").json()
            assert batch["status"] == "completed", batch


def test_request_error_names_llama_stacks_error_type(
    bg: Invoke, llama_api: LlamaStack, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A request the judge refuses gets ``request_failed: ...``; the other rows are scored."""
    texts = _texts(20)
    texts[3] = "This one breaks [[fail:content_filter]]"
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    out = _graded(isolated_env)
    errors = out["llm_error"].to_list()
    scores = out["llm_score"].to_list()
    assert errors[3] is not None and errors[3].startswith("request_failed"), errors[3]
    assert "Simulated failure: content_filter" in errors[3]
    assert scores[3] is None
    others = [i for i in range(len(texts)) if i != 3]
    assert [errors[i] for i in others] == [None] * len(others), sorted({e for e in errors if e})
    assert [scores[i] for i in others] == [judge_score(USER + texts[i]) for i in others]
    summary = _summary(result)
    assert (summary["graded"], summary["failed"]) == (len(texts) - 1, 1)


def test_direct_mode_through_llama_stacks_chat_completions(
    bg: Invoke, llama_api: LlamaStack, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """--mode direct: each row one call to llama-stack's /v1/chat/completions, at most
    --concurrency at once; scores and usage as llama-stack reports them; no batch made."""
    fake_api.chat_latency = 0.05
    batches_before = _batch_count(llama_api)
    texts = _texts(30)
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    src = write_table(isolated_env / "d.csv", frame)
    result = bg("grade", src, "--model", MODEL, "--mode", "direct", "--concurrency", "4", "--json")
    assert result.exit_code == 0, result.output
    out = _graded(isolated_env)
    assert out["llm_error"].null_count() == len(texts), out["llm_error"].drop_nulls()[:3]
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    chats = _upstream_chats(fake_api)
    assert len(chats) == len(texts)
    assert 1 < fake_api.max_chat_in_flight <= 4
    events = _events(home)
    assert {e.executor for e in events} == {"direct"}
    assert sum(e.requests_completed for e in events) == len(texts)
    input_tokens = sum(count_prompt_tokens(body) for body in chats)
    assert sum(e.input_tokens for e in events) == input_tokens == _summary(result)["input_tokens"]
    assert _batch_count(llama_api) == batches_before


def _batch_count(server: LlamaStack) -> int:
    with httpx2.Client(base_url=server.base_url, timeout=10) as client:
        return len(client.get("/batches", params={"limit": 100}).json()["data"])


def test_auto_mode_grades_directly_on_a_server_without_a_batch_api(
    bg: Invoke,
    llama_chat_only_api: LlamaStack,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    home: Path,
) -> None:
    """A real server whose /v1/files answers FastAPI's 404 (as vLLM's does): the default
    --mode auto says so in one line and grades every row directly, once."""
    texts = _texts(12)
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    src = write_table(isolated_env / "d.csv", frame)
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert (
        f"{llama_chat_only_api.base_url} has no Batch API (/files answered HTTP 404): "
        "grading directly"
    ) in said
    assert _graded(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert len(_upstream_chats(fake_api)) == len(texts)
    assert {e.executor for e in _events(home)} == {"direct"}


def test_batch_mode_on_a_server_without_a_batch_api_is_refused(
    bg: Invoke, llama_chat_only_api: LlamaStack, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--mode batch there: exit 2, the fix named, no row sent."""
    frame = pl.DataFrame({"id": [0, 1], "response": _texts(2)})
    src = write_table(isolated_env / "d.csv", frame)
    result = bg("grade", src, "--model", MODEL, "--mode", "batch")
    assert result.exit_code == 2, result.output
    assert "--mode direct" in result.stderr
    assert _upstream_chats(fake_api) == []
