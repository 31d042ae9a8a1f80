"""The model catalogue: name resolution in one place, and each rule with real models."""

from __future__ import annotations

import pytest

from batchgrader.prompting import catalogue
from batchgrader.prompting.catalogue import ModelInfo, lookup, models, normalise, pricing_keys
from tests.fakes.models import rules_for as fake_rules

RESPONSES_ONLY = [
    "gpt-5-pro",
    "gpt-5.2-pro",
    "gpt-5.4-pro",
    "gpt-5.5-pro",
    "o1-pro",
    "o3-pro",
    "computer-use-preview",
]
DECISIONS = (
    "provider",
    "encoding",
    "reasoning",
    "endpoints",
    "structured_output",
    "system_message",
    "temperature",
    "max_output",
)


def _decisions(info: ModelInfo) -> tuple[object, ...]:
    return tuple(getattr(info, field) for field in DECISIONS)


class TestResolution:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("gpt-4.1-mini", "gpt-4.1-mini"),
            ("  GPT-4.1-Mini ", "gpt-4.1-mini"),
            ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
            ("OpenAI/gpt-4o", "gpt-4o"),
            ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("o3-2025-04-16", "o3"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("claude-opus-4-5@20251101", "claude-opus-4-5"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-opus-4-20250514", "claude-opus-4-0"),
            ("claude-opus-4", "claude-opus-4-0"),
            ("gpt-5.6", "gpt-5.6-sol"),
            ("gpt-5.3-chat-latest", "gpt-5.3"),
            ("gpt-4-turbo-preview", "gpt-4-turbo"),
        ],
    )
    def test_names_resolve(self, name: str, expected: str) -> None:
        """Case, whitespace, prefixes, snapshots and aliases all reach one entry."""
        info = lookup(name)
        assert info.known
        assert info.model == expected
        assert normalise(name) == expected

    def test_requested_name_keeps_the_users_spelling(self) -> None:
        """The request names what the user wrote, less whitespace and provider prefix."""
        assert lookup(" openai/gpt-4o-2024-08-06 ").requested == "gpt-4o-2024-08-06"
        assert lookup("claude-3-5-haiku-latest").requested == "claude-3-5-haiku-latest"
        assert not lookup("gpt-4o").fine_tuned

    def test_pricing_keys_most_specific_first(self) -> None:
        """A dated name is tried as written, then undated, then as its alias's model."""
        assert pricing_keys("claude-opus-4-20250514") == (
            "claude-opus-4-20250514",
            "claude-opus-4",
            "claude-opus-4-0",
        )
        assert pricing_keys("OPENAI/gpt-4o") == ("gpt-4o",)

    def test_every_catalogue_model_and_alias_is_its_own_key(self) -> None:
        """Each row resolves to itself; each alias to its row."""
        for name in catalogue.models():
            info = lookup(name)
            assert (info.model, info.known) == (name, True)
            for alias in info.aliases:
                assert lookup(alias).model == name


class TestFineTuned:
    @pytest.mark.parametrize(
        ("name", "base"),
        [
            ("ft:o4-mini-2025-04-16:acme::BbQ2x9", "o4-mini"),
            ("ft:gpt-4o-mini-2024-07-18:acme:grader-v2:9xYz", "gpt-4o-mini"),
            ("ft:gpt-3.5-turbo-0125:acme::abc", "gpt-3.5-turbo"),
            ("openai/ft:gpt-4.1-nano:acme::q1", "gpt-4.1-nano"),
        ],
    )
    def test_follows_its_base_for_every_decision(self, name: str, base: str) -> None:
        """Reasoning, temperature, tokenizer, endpoint, structured output: the base's."""
        info = lookup(name)
        assert info.fine_tuned
        assert info.model == base
        assert _decisions(info) == _decisions(lookup(base))
        assert info.requested == name.removeprefix("openai/")

    def test_reasoning_base_rules(self) -> None:
        """A fine-tuned o4-mini reasons and takes no temperature, like o4-mini."""
        info = lookup("ft:o4-mini-2025-04-16:acme::BbQ2x9")
        assert info.reasoning
        assert not info.temperature
        assert info.encoding == "o200k_base"

    def test_is_priced_under_its_own_name(self) -> None:
        """Fine-tuned models bill at their own rates: no base price is borrowed."""
        name = "ft:gpt-4o-mini:acme::xyz"
        assert normalise(name) == name
        assert pricing_keys(name) == (name,)


class TestRules:
    @pytest.mark.parametrize("name", RESPONSES_ONLY)
    def test_responses_only_models(self, name: str) -> None:
        """Pro models and computer-use-preview are served only on /v1/responses."""
        assert lookup(name).endpoints == frozenset({"responses"})

    @pytest.mark.parametrize("name", ["gpt-4o-mini", "gpt-4.1", "gpt-5", "o3", "o4-mini"])
    def test_chat_and_responses(self, name: str) -> None:
        """General models take both OpenAI endpoints."""
        assert lookup(name).endpoints == frozenset({"chat", "responses"})

    @pytest.mark.parametrize(
        ("name", "mode"),
        [
            ("gpt-3.5-turbo", "tool"),
            ("gpt-4", "tool"),
            ("gpt-4-turbo", "tool"),
            ("gpt-4-0613", "tool"),
            ("o1-mini", "none"),
            ("computer-use-preview", "none"),
            ("gpt-4o-mini", "json_schema"),
            ("o3-mini", "json_schema"),
            ("claude-3-5-haiku", "tool"),
            ("claude-opus-4-1", "tool"),
            ("claude-sonnet-4-5", "json_schema"),
            ("claude-haiku-4-5", "json_schema"),
            ("claude-opus-5-5", "json_schema"),
        ],
    )
    def test_structured_output(self, name: str, mode: str) -> None:
        """Models without JSON-schema output fall back to a tool call or text."""
        assert lookup(name).structured_output == mode

    def test_system_message(self) -> None:
        """o1-mini refuses a system/developer message; others accept one."""
        assert not lookup("o1-mini").system_message
        assert not lookup("o1-mini-2024-09-12").system_message
        assert lookup("o1").system_message
        assert lookup("claude-haiku-4-5").system_message

    @pytest.mark.parametrize(
        ("name", "reasoning", "temperature"),
        [
            ("gpt-4.1-mini", False, True),
            ("gpt-4o", False, True),
            ("o1", True, False),
            ("o3-mini", True, False),
            ("gpt-5-nano", True, False),
            ("gpt-6-sol", True, False),
            ("claude-sonnet-4-5", False, True),
            ("claude-opus-4-7", False, False),
            ("claude-opus-5-5", True, False),
            ("claude-fable-5-1", True, False),
        ],
    )
    def test_reasoning_and_temperature(self, name: str, reasoning: bool, temperature: bool) -> None:
        """Reasoning models count thinking tokens; they and newer Claude reject temperature."""
        info = lookup(name)
        assert (info.reasoning, info.temperature) == (reasoning, temperature)

    def test_encoding(self) -> None:
        """cl100k_base for the GPT-3.5/4 generation, o200k_base after; none for Claude."""
        assert lookup("gpt-4").encoding == "cl100k_base"
        assert lookup("gpt-3.5-turbo-0125").encoding == "cl100k_base"
        assert lookup("gpt-4o").encoding == "o200k_base"
        assert lookup("claude-sonnet-4-5").encoding is None

    def test_limits(self) -> None:
        """Context windows from genai-prices, max output from the kept table."""
        gpt41 = lookup("gpt-4.1-mini")
        assert (gpt41.context_window, gpt41.max_output) == (1_000_000, 32_768)
        assert lookup("gpt-4.5-preview").context_window == 128_000
        assert lookup("gpt-5-pro").max_output == 272_000
        assert lookup("claude-haiku-4-5").max_output == 64_000

    def test_flex(self) -> None:
        """Flex where genai-prices prices the flex tier; never for Claude."""
        assert lookup("o3").flex
        assert lookup("gpt-5-mini").flex
        assert not lookup("gpt-4.1").flex
        assert not lookup("claude-opus-4-5").flex

    def test_flex_agrees_with_the_fake(self) -> None:
        """batchgrader refuses --service-tier flex for a known model without it, and the
        fake refuses it at the same models: the two lists must not drift apart."""
        openai_models = [m for m in models() if lookup(m).provider == "openai"]
        assert [m for m in openai_models if lookup(m).flex != fake_rules(m).flex] == []


class TestClaude:
    @pytest.mark.parametrize(
        ("name", "minimum"),
        [
            ("claude-haiku-4-5", 4096),
            ("claude-opus-4-5", 4096),
            ("claude-sonnet-4-5", 1024),
            ("claude-opus-4-7", 2048),
            ("claude-3-haiku", 2048),
            ("claude-opus-5", 512),
        ],
    )
    def test_cache_minimums(self, name: str, minimum: int) -> None:
        """Each Claude model carries its minimum cacheable prompt length."""
        assert lookup(name).cache_min_tokens == minimum

    def test_claude_entries(self) -> None:
        """Claude models are Anthropic's, on the messages endpoint, without tiktoken."""
        claude = [lookup(name) for name in catalogue.models() if name.startswith("claude")]
        assert {info.model for info in claude} >= {
            "claude-haiku-4-5",
            "claude-sonnet-4-5",
            "claude-opus-4-5",
            "claude-3-5-haiku",
            "claude-3-haiku",
        }
        for info in claude:
            assert info.provider == "anthropic"
            assert info.endpoints == frozenset({"messages"})
            assert info.encoding is None
            assert not info.flex
        assert all(lookup(n).cache_min_tokens is None for n in ("gpt-4o", "o3"))


class TestUnknown:
    @pytest.mark.parametrize(
        ("name", "reasoning"),
        [("gpt-7-preview", False), ("o5-mini", False), ("gpt-6.9-nova", True), ("o4-huge", True)],
    )
    def test_openai_defaults(self, name: str, reasoning: bool) -> None:
        """An unknown model gets cautious OpenAI defaults; reasoning guessed by prefix."""
        info = lookup(name)
        assert not info.known
        assert info.model == name
        assert info.provider == "openai"
        assert info.encoding == "o200k_base"
        assert info.endpoints == frozenset({"chat", "responses"})
        assert info.structured_output == "json_schema"
        assert info.system_message
        assert info.reasoning is reasoning
        assert info.temperature is not reasoning
        assert (info.context_window, info.max_output, info.flex) == (None, None, False)

    def test_anthropic_defaults(self) -> None:
        """An unknown claude-* model is Anthropic's, with the cautious Claude defaults."""
        info = lookup("anthropic/Claude-Opus-9")
        assert not info.known
        assert (info.provider, info.model, info.requested) == (
            "anthropic",
            "claude-opus-9",
            "Claude-Opus-9",
        )
        assert info.endpoints == frozenset({"messages"})
        assert info.encoding is None
        assert info.structured_output == "json_schema"
        assert info.reasoning and not info.temperature

    def test_unknown_keeps_its_name_as_pricing_key(self) -> None:
        """normalise never maps an unknown model onto a known one."""
        assert normalise(" OpenAI/My-Local-Model ") == "my-local-model"
        assert normalise("gpt-7-2031-01-01") == "gpt-7-2031-01-01"

    def test_unknown_fine_tuned_base(self) -> None:
        """A fine-tuned model of an unknown base gets the base's default entry."""
        info = lookup("ft:gpt-9:acme::abc")
        assert (info.known, info.fine_tuned, info.model) == (False, True, "gpt-9")


class TestParse:
    HEADER = ",".join(catalogue.COLUMNS)

    def test_parse_rejects_bad_rows(self) -> None:
        """A malformed models.csv names the line."""
        row = "m,openai,,o200k_base,10,5,maybe,chat,json_schema,true,true,false,"
        with pytest.raises(ValueError, match="line 2"):
            catalogue.parse(f"{self.HEADER}\n{row}\n")
        with pytest.raises(ValueError, match="header"):
            catalogue.parse("model,provider\n")

    def test_parse_rejects_an_alias_that_is_a_model(self) -> None:
        """An alias may not name another row."""
        rows = [
            "a,openai,b,o200k_base,10,5,false,chat,json_schema,true,true,false,",
            "b,openai,,o200k_base,10,5,false,chat,json_schema,true,true,false,",
        ]
        with pytest.raises(ValueError, match="listed twice"):
            catalogue.parse("\n".join([self.HEADER, *rows]) + "\n")
