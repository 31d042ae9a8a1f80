"""OpenAI request lines and bodies (providers/openai/requests.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgrader.prompting import rules
from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import load_prompt
from batchgrader.providers.base import custom_id, id_width, row_of
from batchgrader.providers.openai.requests import OpenAICodec

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ENDPOINTS = [CHAT, RESPONSES]


def builder(
    endpoint: str = CHAT,
    model: str = "gpt-4.1-mini",
    temperature: float | None = None,
    structured: bool = True,
    **more: Any,
) -> OpenAICodec:
    """A codec for the generic prompt, the model's rules applied as a run applies them."""
    options = RequestOptions(
        model=model,
        endpoint=endpoint,
        max_tokens=64,
        temperature=temperature,
        answer_mode=AnswerMode.SCHEMA if structured else AnswerMode.TEXT,
        reasoning=rules.of(model).reasoning,
        **more,
    )
    return OpenAICodec(options, load_prompt("generic", None))


def line(b: OpenAICodec, cid: str, system: str, user: str) -> str:
    """One line through the bulk builder."""
    return b.lines([cid], [system], [user])[0]


def full_line(b: OpenAICodec, cid: str, system: str, user: str) -> str:
    """The line the plain way: ``json.dumps`` of the whole object."""
    obj: dict[str, Any] = {
        "custom_id": cid,
        "method": "POST",
        "url": b.options.endpoint,
        "body": b.body(system, user),
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class TestCustomIds:
    """custom_ids name the 0-based input row, zero-padded."""

    @pytest.mark.parametrize(
        ("rows", "width"), [(1, 6), (999_999, 6), (1_000_000, 6), (1_000_001, 7)]
    )
    def test_width(self, rows: int, width: int) -> None:
        """Six digits, more when the row count needs them."""
        assert id_width(rows) == width

    def test_round_trip(self) -> None:
        """A custom_id maps back to its row."""
        assert custom_id(123, 6) == "row-000123"
        assert row_of("row-000123") == 123
        assert row_of(custom_id(1_234_567, 7)) == 1_234_567

    @pytest.mark.parametrize("cid", ["request-1", "row-", "row-12a", "ROW-1", " row-1"])
    def test_foreign_ids_are_not_rows(self, cid: str) -> None:
        """Anything not ``row-<digits>`` is not one of ours."""
        assert row_of(cid) is None


class TestBody:
    """The request body for each endpoint."""

    def test_chat_body(self) -> None:
        """Chat: system message first, max_completion_tokens, strict json_schema format."""
        body = builder(CHAT).body("SYS", "USER")
        assert body["model"] == "gpt-4.1-mini"
        assert body["messages"] == [
            {"role": "system", "content": "SYS"},
            {"role": "user", "content": "USER"},
        ]
        assert body["max_completion_tokens"] == 64
        assert "max_tokens" not in body
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"]["required"] == ["score"]
        assert "temperature" not in body

    def test_responses_body(self) -> None:
        """Responses: instructions, input, max_output_tokens, strict text.format."""
        body = builder(RESPONSES).body("SYS", "USER")
        assert body["instructions"] == "SYS"
        assert body["input"] == [{"role": "user", "content": "USER"}]
        assert body["max_output_tokens"] == 64
        assert "messages" not in body and "max_completion_tokens" not in body
        fmt = body["text"]["format"]
        assert fmt["type"] == "json_schema"
        assert fmt["strict"] is True
        assert fmt["schema"]["properties"]["score"]["maximum"] == 5

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_temperature_only_when_set(self, endpoint: str) -> None:
        """temperature is sent when set (0 included) and omitted when unset."""
        assert builder(endpoint, temperature=0.0).body("s", "u")["temperature"] == 0.0
        assert "temperature" not in builder(endpoint).body("s", "u")

    @pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "o1"])
    def test_no_temperature_for_reasoning_models(self, model: str) -> None:
        """Reasoning models never get a temperature, even when one is configured."""
        assert rules.of(model).reasoning
        assert "temperature" not in builder(model=model, temperature=0.2).body("s", "u")

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_unstructured_has_no_format(self, endpoint: str) -> None:
        """Without structured output no answer format is requested."""
        body = builder(endpoint, structured=False).body("s", "u")
        assert "response_format" not in body and "text" not in body


TEXTS = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
) | st.sampled_from(['"quoted"', "back\\slash", "new\nline", "\x00\x1f", "东京 🙂", "\u2028"])


class TestLines:
    """Lines are byte-for-byte ``json.dumps`` of the full request object."""

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    @given(system=TEXTS, user=TEXTS, row=st.integers(0, 10**7))
    def test_line_equals_plain_json(self, endpoint: str, system: str, user: str, row: int) -> None:
        """``line`` equals json.dumps of the object built with ``body``, for any text."""
        b = builder(endpoint, temperature=0.5)
        cid = custom_id(row, 8)
        built = line(b, cid, system, user)
        assert built == full_line(b, cid, system, user)
        assert "\n" not in built
        assert json.loads(built)["body"] == b.body(system, user)

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_many_lines_equal_one_by_one(self, endpoint: str) -> None:
        """``lines`` and ``constant_system_lines`` equal ``line`` row by row."""
        b = builder(endpoint)
        ids = [custom_id(i, 6) for i in range(3)]
        users = ["a", 'b "q"', "c\nd"]
        systems = ["s1", "s2", "s3"]
        assert b.lines(ids, systems, users) == [
            full_line(b, i, s, u) for i, s, u in zip(ids, systems, users, strict=True)
        ]
        assert b.constant_system_lines(ids, "S", users) == [
            full_line(b, i, "S", u) for i, u in zip(ids, users, strict=True)
        ]

    def test_body_is_a_fresh_copy(self) -> None:
        """Each body is independent: changing one does not change the next."""
        b = builder()
        first = b.body("s", "u")
        first["messages"][0]["content"] = "changed"
        assert b.body("s", "u")["messages"][0]["content"] == "s"


class TestModelRules:
    """What a model accepts shapes its body (issue 12)."""

    def test_folded_system_message(self) -> None:
        """A model that refuses a system message gets it folded into the user message."""
        b = builder(model="o1-mini", fold_system=True)
        body = b.body("SYS", "USER")
        assert body["messages"] == [{"role": "user", "content": "SYS\n\nUSER"}]
        assert b.constant_system_lines(["row-000000"], "S", ["u"]) == [
            full_line(b, "row-000000", "S", "u")
        ]

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_reasoning_effort(self, endpoint: str) -> None:
        """Reasoning models get the effort: reasoning_effort (chat), reasoning.effort."""
        body = builder(endpoint, model="gpt-5-mini", reasoning_effort="low").body("s", "u")
        if endpoint == CHAT:
            assert body["reasoning_effort"] == "low"
        else:
            assert body["reasoning"] == {"effort": "low"}

    def test_no_effort_for_other_models(self) -> None:
        """A non-reasoning model is never sent a reasoning effort."""
        body = builder(model="gpt-4.1-mini", reasoning_effort="low").body("s", "u")
        assert "reasoning_effort" not in body and "reasoning" not in body

    def test_service_tier(self) -> None:
        """The flex tier is sent when asked for."""
        assert builder(service_tier="flex").body("s", "u")["service_tier"] == "flex"
        assert "service_tier" not in builder().body("s", "u")
