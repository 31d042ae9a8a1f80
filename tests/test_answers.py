"""The judge's answers as scores, and output/error lines as per-row results."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from batchgrader.execution.results import parse_result_files
from batchgrader.prompting.answers import parse_answer
from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import Prompt, Scale, load_prompt
from batchgrader.providers.base import RowError
from batchgrader.providers.openai.requests import OpenAICodec

PROMPT = load_prompt(None, None)
SCHEMA_ONLY = replace(
    PROMPT, schema={"type": "object", "properties": {"label": {"type": "string"}}}
)


@pytest.mark.parametrize(
    ("text", "score", "error"),
    [
        ("4", 4, None),
        ("Score: 5 (excellent)", 5, None),
        ("  1\n", 1, None),
        ("I'd say 3 out of 5", 3, None),
        ("4/5", 4, None),
        ("3.5", None, "not a whole number in '3.5'"),
        (
            "On a scale of 1 to 5: 4",
            None,
            "several numbers in 'On a scale of 1 to 5: 4'",
        ),
        ("7", None, "score 7 outside 1-5"),
        ("0", None, "score 0 outside 1-5"),
        ("-2", None, "score -2 outside 1-5"),
        ("I cannot decide", None, "no number in 'I cannot decide'"),
        ("", None, "empty answer"),
        ("   ", None, "empty answer"),
        (None, None, "empty answer"),
    ],
)
def test_plain_answers(text: str | None, score: int | None, error: str | None) -> None:
    """Plain-text answers: the one whole number, in range, else an unparseable error."""
    assert parse_answer(text, PROMPT, AnswerMode.TEXT) == (score, error, None)


@pytest.mark.parametrize(
    ("text", "score", "error_start"),
    [
        ('{"score": 2}', 2, None),
        ('{"score": 5, "extra": "x"}', 5, None),
        ('{"score": 6}', None, "score 6 outside 1-5"),
        ('{"score": "3"}', None, "score is '3'"),
        ('{"score": true}', None, "score is True"),
        ('{"score": 2.5}', None, "score is 2.5"),
        ('{"note": "no score"}', None, "score is None"),
        ("[1, 2]", None, "not a JSON object"),
        ("3", None, "not a JSON object"),
        ("I cannot decide", None, "not JSON"),
    ],
)
def test_structured_answers(text: str, score: int | None, error_start: str | None) -> None:
    """Structured answers: an integer ``score`` field in range, else unparseable."""
    got, error, _ = parse_answer(text, PROMPT, AnswerMode.SCHEMA)
    assert got == score
    if error_start is None:
        assert error is None
    else:
        assert error is not None and error.startswith(error_start), error


def test_structured_fields_returned() -> None:
    """The whole answer object comes back for the llm_<field> columns."""
    assert parse_answer('{"score": 3, "why": "ok"}', PROMPT, mode=AnswerMode.SCHEMA) == (
        3,
        None,
        {"score": 3, "why": "ok"},
    )


def test_schema_without_score_is_fields_only() -> None:
    """A custom schema with no score property: no score, no error, the fields."""
    assert parse_answer('{"label": "good"}', SCHEMA_ONLY, mode=AnswerMode.SCHEMA) == (
        None,
        None,
        {"label": "good"},
    )


def test_custom_scale() -> None:
    """The prompt's scale bounds the score."""
    prompt: Prompt = replace(PROMPT, scale=Scale(0, 10))
    assert parse_answer("0", prompt, mode=AnswerMode.TEXT) == (0, None, None)
    assert parse_answer("10", prompt, mode=AnswerMode.TEXT) == (10, None, None)
    assert parse_answer("11", prompt, mode=AnswerMode.TEXT)[1] == "score 11 outside 0-10"


# --- output and error files -------------------------------------------------------------


def _chat(answer: str, prompt_tokens: int = 10, completion: int = 2) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [{"message": {"role": "assistant", "content": answer}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion},
    }


def _line(cid: str, status: int | None, body: Any = None, error: Any = None) -> str:
    response = None if status is None else {"status_code": status, "body": body}
    return json.dumps({"id": "batch_req", "custom_id": cid, "response": response, "error": error})


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CODEC = OpenAICodec(
    RequestOptions(
        model="gpt-4.1-mini", endpoint="/v1/chat/completions", max_tokens=64, temperature=None
    ),
    load_prompt(None, None),
)
NOT_RUN = RowError("not_run", "missing")


def errors_of(results: Any) -> list[str | None]:
    """Each row's error as a graded file shows it (``code: message``)."""
    return [
        None if code is None else (f"{code}: {msg}" if msg else code)
        for code, msg in zip(results.codes, results.messages, strict=True)
    ]


def test_result_lines_every_shape(tmp_path: Path) -> None:
    """Success, HTTP failure, top-level error, malformed, foreign and missing rows."""
    output = _write(
        tmp_path / "out.jsonl",
        [
            _line("row-000003", 200, _chat('{"score": 4}', 11, 3)),
            _line("row-000000", 200, _chat('{"score": 2}', 10, 2)),
            "{not json",
            json.dumps({"id": "x", "response": None, "error": None}),  # no custom_id
            _line("someone-else", 200, _chat('{"score": 1}')),
            _line("row-000007", 200, _chat('{"score": 5}')),
            _line("row-000005", 200, _chat("I cannot decide")),
        ],
    )
    errors = _write(
        tmp_path / "err.jsonl",
        [
            _line(
                "row-000001",
                400,
                {"error": {"message": "too long", "code": "context_length_exceeded"}},
            ),
            _line("row-000002", None, error={"code": "batch_expired", "message": "late"}),
            _line("row-000006", 503, {}),
        ],
    )
    results = parse_result_files(
        [output, errors], set(range(8)), CODEC, PROMPT, AnswerMode.SCHEMA, NOT_RUN
    )
    by_row = dict(
        zip(results.rows, zip(results.scores, errors_of(results), strict=True), strict=True)
    )
    assert by_row[0] == (2, None)
    assert by_row[7] == (5, None)
    assert by_row[3] == (4, None)
    assert by_row[1] == (None, "context_length_exceeded: too long")
    assert by_row[2] == (None, "batch_expired: late")
    assert by_row[6] == (None, "http_503")
    assert by_row[5][0] is None and str(by_row[5][1]).startswith("unparseable")
    assert by_row[4] == (None, "not_run: missing")
    assert sorted(results.rows) == list(range(8))
    assert results.malformed_lines == 3
    assert results.succeeded == 3
    assert results.error_codes["not_run"] == 1
    assert results.error_codes["unparseable"] == 1
    frame = results.frame()
    assert frame.height == 8


def test_responses_body_and_refusal(tmp_path: Path) -> None:
    """A /v1/responses body is read from its output_text; a refusal is ``refused``."""
    response = {
        "object": "response",
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "message", "content": [{"type": "output_text", "text": '{"score": 3}'}]},
        ],
        "usage": {"input_tokens": 9, "output_tokens": 4},
    }
    refusal = {
        "object": "chat.completion",
        "choices": [{"message": {"content": None, "refusal": "I can't help with that."}}],
    }
    path = _write(
        tmp_path / "out.jsonl",
        [_line("row-000000", 200, response), _line("row-000001", 200, refusal)],
    )
    results = parse_result_files([path], {0, 1}, CODEC, PROMPT, AnswerMode.SCHEMA, NOT_RUN)
    by_row = dict(zip(results.rows, results.scores, strict=True))
    assert by_row == {0: 3, 1: None}
    assert errors_of(results)[results.rows.index(1)] == "refused: I can't help with that."
    assert results.usage.input_tokens == 9 and results.usage.output_tokens == 4
