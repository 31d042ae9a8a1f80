"""Result lines as servers really write them, and spend that follows the provider.

Every case runs ``grade`` through the CLI against the fake Batch API, whose knobs write
the result files the way a broken or merely compatible server does (issue 13, items 6
and 7; issue 12's llama-stack lines, refusals and truncations). A bad line is its own
row's error and the rest of the batch is kept; the spend recorded is the provider's own
figure where it gives one, and never less than what was billed where it does not.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import REFUSAL_TEXT, judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _texts(n: int) -> list[str]:
    return [f"Answer {i}: glaciers move about {i + 1} metres a day in spring." for i in range(n)]


def _grade(bg: Invoke, folder: Path, texts: list[str], *args: object) -> Result:
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    src = write_table(folder / "d.csv", frame)
    return bg("grade", src, "--json", *args)


def _graded(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / "output" / "d.graded.csv", infer_schema_length=None)


def _summary(result: Result) -> dict[str, Any]:
    report, _ = json.JSONDecoder().raw_decode(result.stdout)
    (summary,) = report["files"]
    assert isinstance(summary, dict)
    return summary


def _recorded(home: Path) -> tuple[int, int, int]:
    """(input tokens, output tokens, committed events) the ledger holds."""
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        row = db.execute(
            "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
            " COALESCE(SUM(committed), 0) FROM usage_events"
        ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def _billed(fake: FakeBatchAPI) -> tuple[int, int]:
    """What the fake's batches really used (its own usage, whatever the knobs show)."""
    usages = [b["usage"] for b in fake.batches.values()]
    return sum(u["input_tokens"] for u in usages), sum(u["output_tokens"] for u in usages)


def _log(home: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((home / "logs").glob("run-*.log")))


# --- one bad line is that row's error (issue 13, item 6) -------------------------------

BAD_LINES = {
    "not_utf8": "not valid UTF-8 (byte 0xff",
    "prompt_tokens_text": "usage.prompt_tokens is 'abc', not a whole number",
    "choices_object": "choices is",
    "usage_list": "usage is a list, not an object",
    "details_string": "usage.prompt_tokens_details is the string 'cached: 0', not an object",
    "negative_usage": "usage.completion_tokens is negative (-7227)",
    "huge_usage": "is impossible for one request",
}


def test_each_bad_line_is_its_rows_error(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A non-UTF-8 byte, a usage of the wrong type or an impossible value, ``choices`` of
    the wrong type: each marks only its row ``malformed_line: <what>``, the others are
    scored, and the job finishes with the provider's own usage recorded."""
    texts = _texts(len(BAD_LINES) + 3)
    rows = {kind: f"row-{i:06d}" for i, kind in enumerate(BAD_LINES, start=1)}
    fake_api.corrupt_lines = {cid: kind for kind, cid in rows.items()}
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    out = _graded(isolated_env)
    errors, scores = out["llm_error"].to_list(), out["llm_score"].to_list()
    for i, kind in enumerate(BAD_LINES, start=1):
        assert errors[i].startswith("malformed_line: "), (kind, errors[i])
        assert BAD_LINES[kind] in errors[i], (kind, errors[i])
        assert scores[i] is None
    good = [0, *range(len(BAD_LINES) + 1, len(texts))]
    assert [scores[i] for i in good] == [judge_score(USER + texts[i]) for i in good]
    assert all(errors[i] is None for i in good)
    summary = _summary(result)
    assert (summary["graded"], summary["failed"]) == (len(good), len(BAD_LINES))
    assert _recorded(home) == (*_billed(fake_api), 0)
    assert fake_api.request_count("file_content") == 1  # attributable lines: no re-download


def test_a_2xx_row_is_never_http_200(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A 200 line whose body cannot be read says what could not be read, not ``http_200``."""
    texts = _texts(2)
    fake_api.corrupt_lines = {"row-000001": "choices_object"}
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    error = _graded(isolated_env)["llm_error"][1]
    assert error.startswith("malformed_line: choices is") and "http_200" not in error


# --- spend follows the provider (issue 13, item 7) --------------------------------------


@pytest.mark.parametrize("reported", [True, False], ids=["batch-usage", "no-batch-usage"])
def test_zero_byte_output_file_is_never_zero_dollars(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, reported: bool
) -> None:
    """A billed batch whose output file is empty records the provider's usage, or, without
    one, every completed request at its worst case: never $0."""
    texts = _texts(4)
    fake_api.report_usage = reported
    fake_api.corrupt_lines = {f"row-{i:06d}": "missing" for i in range(4)}
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    assert set(_graded(isolated_env)["llm_error"].to_list()) == {
        "not_run: missing from the batch's results"
    }
    billed_in, billed_out = _billed(fake_api)
    recorded_in, recorded_out, committed = _recorded(home)
    assert committed == 0
    if reported:
        assert (recorded_in, recorded_out) == (billed_in, billed_out)
    else:
        assert recorded_in >= billed_in and recorded_out >= billed_out > 0
    assert _summary(result)["cost"] not in (None, "0")


@pytest.mark.parametrize("reported", [True, False], ids=["batch-usage", "no-batch-usage"])
def test_missing_lines_never_record_less(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, reported: bool
) -> None:
    """Three lines missing from the output: the batch's usage is recorded (a mismatch with
    the lines is logged), or the missing rows count at their worst case."""
    texts = _texts(8)
    fake_api.report_usage = reported
    fake_api.corrupt_lines = {f"row-{i:06d}": "missing" for i in (1, 4, 6)}
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    assert _summary(result)["graded"] == 5
    billed = _billed(fake_api)
    recorded = _recorded(home)
    if reported:
        assert recorded == (*billed, 0)
        assert "the provider reports" in _log(home)
    else:
        assert recorded[0] > billed[0] * 5 // 8 and recorded[1] > billed[1]
        assert "recorded at their worst case" in _log(home)


@pytest.mark.parametrize("kind", ["negative_usage", "huge_usage"])
def test_impossible_line_usage_is_not_believed(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, kind: str
) -> None:
    """A negative or above-context usage on a line is that row's error; the spend recorded
    is the batch's, never −7,227 or 2×10¹⁵ tokens."""
    texts = _texts(3)
    fake_api.corrupt_lines = {"row-000001": kind}
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    assert _recorded(home) == (*_billed(fake_api), 0)
    fake_api.report_usage = False  # without the provider's figure: the row's worst case
    forced = _grade(bg, isolated_env, texts, "--force", "--overwrite")
    assert forced.exit_code == 1, forced.output
    summary = _summary(forced)
    billed_in = _billed(fake_api)[0] // 2  # the forced job's batch alone
    assert billed_in <= summary["input_tokens"] < 2 * billed_in, summary
    assert 0 < summary["output_tokens"] < 10_000, summary


def test_duplicate_custom_ids_with_different_answers_are_marked(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A row answered twice differently is ``duplicate_result`` (no answer is chosen); an
    identical repeat is read once; both answers' usage is spent."""
    texts = _texts(4)
    fake_api.report_usage = False
    fake_api.corrupt_lines = {"row-000001": "duplicate_differs", "row-000002": "duplicate_same"}
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    out = _graded(isolated_env)
    assert out["llm_error"][1].startswith("duplicate_result: the batch returned 2 different")
    assert out["llm_score"][1] is None
    assert out["llm_score"][2] == judge_score(USER + texts[2]) and out["llm_error"][2] is None
    billed_in, billed_out = _billed(fake_api)
    recorded_in, recorded_out, _ = _recorded(home)
    per_row_in = billed_in // 4
    assert recorded_in == billed_in + 2 * per_row_in  # two repeated lines, both billed
    assert recorded_out > billed_out
    assert "answered more than once, differently" in result.stderr + _log(home)


# --- lines of compatible servers, refusals and truncations (issue 12) -------------------


def test_llama_stack_lines_are_read(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """llama-stack's lines (the body a JSON string, errors ``{type, message}``, no batch
    usage, no trailing newline) give the same scores, and the failed row its error type."""
    texts = _texts(5)
    texts[3] = "Too long for the model [[fail:context_length_exceeded]]"
    fake_api.line_style = "llama_stack"
    fake_api.report_usage = False
    result = _grade(bg, isolated_env, texts)
    assert result.exit_code == 1, result.output
    out = _graded(isolated_env)
    good = [0, 1, 2, 4]
    assert [out["llm_score"][i] for i in good] == [judge_score(USER + texts[i]) for i in good]
    assert out["llm_error"][3] == (
        "request_failed: Error code: 400 - Simulated failure: context_length_exceeded"
    )
    assert "http_200" not in "".join(e for e in out["llm_error"].to_list() if e)
    billed = _billed(fake_api)
    assert _recorded(home)[:2] == billed  # from the lines: the body string was read


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/responses"])
def test_refusals_and_truncations_say_so(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, endpoint: str
) -> None:
    """A refusal is ``refused: <the model's text>``; a truncated answer is ``truncated:``
    with the limit it hit and the flag that raises it; neither is resent by a retry."""
    texts = _texts(3)
    texts[0] = "Please write something dreadful [[refuse]]"
    texts[2] = "Ramble on and on [[truncate]]"
    flags = ("--endpoint", endpoint, "--max-tokens", "300")
    result = _grade(bg, isolated_env, texts, *flags)
    assert result.exit_code == 1, result.output
    out = _graded(isolated_env)
    assert out["llm_error"][0] == f"refused: {REFUSAL_TEXT}"
    assert out["llm_error"][2] == (
        "truncated: the answer stopped at the output limit (300 tokens); raise "
        "request.max_tokens_per_response (--max-tokens)"
    )
    assert out["llm_score"][1] == judge_score(USER + texts[1])
    assert _summary(result)["invalid_answers"] == 2
    retried = bg("grade", isolated_env / "d.csv", *flags, "--retry-failed", "--json")
    assert retried.exit_code == 1, retried.output
    assert fake_api.batches_created == 1  # permanent: nothing to resend
