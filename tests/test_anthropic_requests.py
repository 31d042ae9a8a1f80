"""Anthropic request lines and result lines (providers/anthropic/requests.py, results.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import load_prompt
from batchgrader.providers.anthropic import AnthropicProvider
from batchgrader.providers.anthropic.requests import AnthropicCodec, strict_schema
from batchgrader.providers.anthropic.results import parse_line, parse_reply
from batchgrader.settings import AnthropicSettings, ApiSettings
from tests.fakes.anthropic_models import DEFAULT_MODELS, count_input_tokens
from tests.fakes.anthropic_params import Context, validate_params

MODEL = "claude-haiku-4-5"
SYSTEM = "You are a judge."


def codec(mode: AnswerMode = AnswerMode.SCHEMA, model: str = MODEL) -> AnthropicCodec:
    """The codec of the generic prompt, as a run builds it."""
    options = RequestOptions(
        model=model, endpoint="/v1/messages", max_tokens=64, temperature=None, answer_mode=mode
    )
    provider = AnthropicProvider(AnthropicSettings(), ApiSettings())
    return provider.codec(options, load_prompt("generic", None))


def params_of(line: str) -> dict[str, Any]:
    data = json.loads(line)
    assert set(data) == {"custom_id", "params"}
    params: dict[str, Any] = data["params"]
    return params


class TestRequests:
    """Each line is a custom_id and a Messages body the API accepts."""

    def test_shape(self) -> None:
        """System on top, the user message, max_tokens always, no sampling parameter."""
        (line,) = codec().constant_system_lines(["row-000001"], SYSTEM, ["Rate this."])
        params = params_of(line)
        assert params["model"] == MODEL
        assert params["system"] == SYSTEM
        assert params["messages"] == [{"role": "user", "content": "Rate this."}]
        assert params["max_tokens"] == 64
        assert not {"temperature", "top_p", "top_k", "metadata"} & set(params)
        validate_params(params, Context(DEFAULT_MODELS, in_batch=True))

    def test_structured_output_schema_is_strict(self) -> None:
        """The score schema goes to output_config.format, closed, bounds in the description."""
        params = params_of(codec().lines(["row-1"], [SYSTEM], ["x"])[0])
        schema = params["output_config"]["format"]["schema"]
        assert schema["additionalProperties"] is False
        score = schema["properties"]["score"]
        assert "minimum" not in score and "maximum" not in score
        assert score["description"] == "{minimum: 1, maximum: 5}"

    def test_forced_tool(self) -> None:
        """Tool models are asked for a forced call of the grade tool."""
        params = params_of(codec(AnswerMode.TOOL).lines(["row-1"], [SYSTEM], ["x"])[0])
        assert params["tool_choice"] == {"type": "tool", "name": "grade"}
        assert params["tools"][0]["name"] == "grade"
        assert "output_config" not in params

    def test_text_mode_has_no_format(self) -> None:
        """Without structured output nothing but the prompt asks for the answer."""
        params = params_of(codec(AnswerMode.TEXT).lines(["row-1"], [SYSTEM], ["x"])[0])
        assert not {"output_config", "tools", "tool_choice"} & set(params)

    def test_long_shared_system_gets_one_cache_breakpoint(self) -> None:
        """A shared system prompt over the model's cache minimum is cached, the same in
        every line; a short one, or per-row ones, are not."""
        long_system = "Judge carefully. " * 2000
        lines = codec().constant_system_lines(["row-1", "row-2"], long_system, ["a", "b"])
        systems = [params_of(line)["system"] for line in lines]
        assert systems[0] == systems[1]
        assert systems[0] == [
            {"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}
        ]
        short = codec().constant_system_lines(["row-1"], SYSTEM, ["a"])
        assert params_of(short[0])["system"] == SYSTEM
        per_row = codec().lines(["row-1"], [long_system], ["a"])
        assert params_of(per_row[0])["system"] == long_system

    def test_body_is_the_lines_params(self) -> None:
        """A direct call's body equals the params of the batch line."""
        c = codec()
        (line,) = c.constant_system_lines(["row-1"], SYSTEM, ["é ü"])
        assert c.body(SYSTEM, "é ü") == params_of(line)
        assert c.split_line(line) == ("row-1", params_of(line))

    def test_strict_schema_keeps_what_it_can(self) -> None:
        """Nested objects are closed, enums and required kept, a description extended."""
        schema = {
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": ["a", "b"], "maxLength": 3},
                "inner": {"type": "object", "properties": {"n": {"type": "number"}}},
            },
            "required": ["label"],
        }
        strict = strict_schema(schema)
        assert strict["required"] == ["label"]
        assert strict["properties"]["label"] == {
            "type": "string",
            "enum": ["a", "b"],
            "description": "{maxLength: 3}",
        }
        assert strict["properties"]["inner"]["additionalProperties"] is False
        assert "additionalProperties" not in schema  # the prompt's own schema is not changed


def _line(result: dict[str, Any], cid: str = "row-000003") -> bytes:
    return json.dumps({"custom_id": cid, "result": result}).encode()


def _message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "type": "message",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 10, "output_tokens": 2, **usage},
    }


class TestResults:
    """Result lines become answers, errors and usage in the core's words."""

    def test_succeeded_text_and_usage(self) -> None:
        """Text blocks are the answer; cache reads and writes are parts of the input."""
        message = _message(
            [{"type": "text", "text": "4"}],
            cache_read_input_tokens=100,
            cache_creation_input_tokens=50,
        )
        result = parse_line(_line({"type": "succeeded", "message": message}))
        assert result.custom_id == "row-000003"
        assert result.answer is not None
        assert result.answer.text == "4" and result.answer.error is None
        usage = result.answer.usage
        assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (
            160,
            100,
            50,
        )
        assert usage.output_tokens == 2

    def test_tool_input_is_the_answer(self) -> None:
        """A forced tool call's input is read as the JSON answer."""
        block = {"type": "tool_use", "id": "t", "name": "grade", "input": {"score": 3}}
        result = parse_line(_line({"type": "succeeded", "message": _message([block], "tool_use")}))
        assert result.answer is not None and json.loads(result.answer.text or "") == {"score": 3}

    @pytest.mark.parametrize(
        ("result", "code"),
        [
            ({"type": "succeeded", "message": _message([], "refusal")}, "refused"),
            (
                {
                    "type": "succeeded",
                    "message": _message([{"type": "text", "text": "{"}], "max_tokens"),
                },
                "truncated",
            ),
            (
                {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "busy"},
                    },
                },
                "overloaded_error",
            ),
            ({"type": "canceled"}, "batch_cancelled"),
            ({"type": "expired"}, "batch_expired"),
            ({"type": "mystery"}, "malformed_line"),
            ({"type": "succeeded", "message": _message([], input_tokens=-1)}, "malformed_line"),
        ],
        ids=["refusal", "max_tokens", "errored", "canceled", "expired", "unknown", "bad-usage"],
    )
    def test_error_codes(self, result: dict[str, Any], code: str) -> None:
        """Refusals, truncation, errored, canceled, expired and unreadable lines."""
        parsed = parse_line(_line(result))
        assert parsed.answer is not None and parsed.answer.error is not None
        assert parsed.answer.error.code == code

    def test_unattributable_lines(self) -> None:
        """A line without a custom_id, or not JSON, names no row."""
        assert parse_line(b"not json").custom_id is None
        assert parse_line(b'{"result": {}}').custom_id is None

    def test_direct_replies(self) -> None:
        """A direct call's error body gives its error type as the code."""
        error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
        answer = parse_reply(429, error)
        assert answer.error is not None and answer.error.code == "rate_limit_error"
        ok = parse_reply(200, _message([{"type": "text", "text": "5"}]))
        assert ok.text == "5"


def test_approximate_count_is_within_its_band_of_the_fake() -> None:
    """The offline count of a request lands within its stated band of the fake's count."""
    c = codec()
    provider = AnthropicProvider(AnthropicSettings(), ApiSettings())
    options = c.options
    counter = provider.counter(options, c.prompt)
    text = "A plain English answer about glaciers and the tides, of modest length. " * 5
    params = params_of(c.constant_system_lines(["row-1"], SYSTEM, [text])[0])
    approx = (
        counter.message_overhead(("system", "user")) + counter.count(SYSTEM) + counter.count(text)
    )
    exact = count_input_tokens(params)
    assert abs(approx - exact) <= counter.error_band * approx


def test_cli_starts_without_the_anthropic_sdk() -> None:
    """Importing the CLI does not import anthropic (seconds that count never needs offline)."""
    code = "import sys, batchgrader.cli; sys.exit('anthropic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
