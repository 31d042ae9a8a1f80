"""Exact request token counts with tiktoken (tokens.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken

from batchgrader.errors import TokenizerUnavailable
from batchgrader.prompting import tokens
from batchgrader.prompting.catalogue import lookup
from batchgrader.prompting.tokens import Counter, encoding_name
from tests.helpers import break_tokenizer, request_tokens

MESSAGES = [
    ("system", "You are an impartial judge.\nScore 1-5."),
    ("user", 'Text: "naïve" — 東京 🙂 <|endoftext|> {braces}\n\ttabbed'),
]


@pytest.fixture
def no_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tiktoken cannot load any encoding (empty cache, no download) during the test."""
    empty = break_tokenizer(monkeypatch, tmp_path)
    yield empty
    tokens._encoding.cache_clear()


class TestEncodingChoice:
    """Which tiktoken encoding a model uses."""

    @pytest.mark.parametrize(
        "model",
        ["gpt-4", "gpt-4-0613", "gpt-4-turbo", "gpt-3.5-turbo", "openai/gpt-4"],
    )
    def test_old_models_use_cl100k(self, model: str) -> None:
        """gpt-4 and gpt-3.5 models are counted with cl100k_base."""
        assert encoding_name(model) == "cl100k_base"

    @pytest.mark.parametrize(
        "model",
        ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4.5-preview", "gpt-5", "o3", "o4-mini"],
    )
    def test_current_models_use_o200k(self, model: str) -> None:
        """Current models are counted with o200k_base."""
        assert encoding_name(model) == "o200k_base"

    @pytest.mark.parametrize(
        ("model", "window"),
        [
            ("gpt-4.1-mini", 1_000_000),
            ("gpt-4o-2024-08-06", 128_000),
            ("gpt-4", 8_192),
            ("gpt-4-turbo-2024-04-09", 128_000),
            ("gpt-5-mini", 400_000),
            ("o1-mini", 128_000),
            ("my-local-model", None),
        ],
    )
    def test_context_window(self, model: str, window: int | None) -> None:
        """Context windows come from the model catalogue (snapshots resolved)."""
        assert lookup(model).context_window == window


class TestCounting:
    """The OpenAI counting recipe, batch counting and the tokenizer's absence."""

    @pytest.mark.parametrize("model", ["gpt-4.1-mini", "gpt-4"])
    def test_request_tokens_follow_the_recipe(self, model: str) -> None:
        """A request is 3 + sum(3 + role + content) tokens, in the model's encoding."""
        enc = tiktoken.get_encoding(encoding_name(model))
        expected = 3 + sum(
            3 + len(enc.encode_ordinary(role)) + len(enc.encode_ordinary(content))
            for role, content in MESSAGES
        )
        assert request_tokens(Counter.for_model(model), MESSAGES) == expected

    def test_known_count(self) -> None:
        """A fixed two-message request has the known o200k_base count."""
        counter = Counter.for_model("gpt-4o")
        messages = [("system", "You are a helpful assistant."), ("user", "Hello!")]
        # 3 priming + (3 + 1 "system" + 6) + (3 + 1 "user" + 2)
        assert request_tokens(counter, messages) == 19

    def test_overhead_plus_contents_is_request_tokens(self) -> None:
        """The per-file overhead plus each content's tokens equals the plain count."""
        counter = Counter.for_model("gpt-4.1-mini")
        overhead = counter.message_overhead([role for role, _ in MESSAGES])
        contents = sum(counter.count(content) for _, content in MESSAGES)
        assert overhead + contents == request_tokens(counter, MESSAGES)

    def test_special_token_text_counts_as_text(self) -> None:
        """Text that spells a special token is counted as ordinary text, not rejected."""
        counter = Counter.for_model("gpt-4.1-mini")
        assert counter.count("<|endoftext|>") > 1

    @pytest.mark.parametrize("threads", [1, 3])
    def test_count_many_equals_count(self, threads: int) -> None:
        """Batch counting (threaded above 2,000 texts) equals counting one by one."""
        counter = Counter(encoding_name("gpt-4.1-mini"), threads)
        texts = [f"row {i}: " + 'ünïcode, "quotes"\nand more ' * (i % 7) for i in range(2_500)]
        assert counter.count_many(texts) == [counter.count(t) for t in texts]

    def test_count_many_of_nothing(self) -> None:
        """Counting no texts gives no counts."""
        assert Counter.for_model("gpt-4.1-mini").count_many([]) == []

    def test_unavailable_tokenizer_is_a_clear_error(self, no_tokenizer: Path) -> None:
        """With no cached encoding and no network, the error names TIKTOKEN_CACHE_DIR."""
        with pytest.raises(TokenizerUnavailable) as info:
            Counter.for_model("gpt-4.1-mini")
        assert "'o200k_base' could not be loaded" in info.value.message
        assert str(no_tokenizer) in info.value.message
        assert info.value.hint is not None and "TIKTOKEN_CACHE_DIR" in info.value.hint
        assert info.value.exit_code == 2
