"""An offline approximation of Claude's input tokens, with its error band.

Claude has no published tokenizer: only the ``count_tokens`` endpoint counts exactly
(``counting.py``). Offline, a text's tokens are its tiktoken ``o200k_base`` tokens times
a factor, per tokenizer generation:

* models before Opus 4.7 (Claude 3.x, 4.0 to 4.6, Haiku 4.5): **1.20**. Anthropic's
  own token-counting reference says tiktoken "undercounts Claude tokens by ~15–20% on
  typical text, and by much more on code or non-English input";
* Opus 4.7 and later (a new tokenizer): **1.20 × 1.33 = 1.60**. Anthropic's migration
  guide gives 1.0–1.35x the tokens of 4.6; independent count_tokens measurements found
  1.00x (CJK, Cyrillic, Arabic) to 1.47x (English technical prose), 1.13–1.33x for code.

The band is the spread of those measurements around the factor, widened for code and
non-English text: **±25%** before Opus 4.7, **±30%** from it. ``docs/providers.md``
lists the sources and ``scripts/measure_claude_tokens.py`` measures the band again on
your own data with a key. A request's fixed parts are added: the answer schema
(structured output) or the forced tool's definition plus the tool-use system prompt
Anthropic documents (313 tokens with ``tool_choice`` tool), and 3 tokens per message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.prompting.tokens import Counter

#: Tokens of the system prompt Anthropic adds when a tool call is forced (Claude 4.x).
TOOL_SYSTEM_TOKENS = 313
TOKENS_PER_MESSAGE = 3
BASE_TOKENS = 3
#: (factor, band) of the tokenizer before Opus 4.7, and from it.
CLASSIC = (1.20, 0.25)
NEWER = (1.60, 0.30)
#: Models with the tokenizer introduced by Opus 4.7 (and, presumably, every later one).
_NEWER = re.compile(r"claude-(?:[a-z]+-)?(?:4-[7-9]|[5-9])")


def factor_and_band(model: str) -> tuple[float, float]:
    """The approximation's factor over o200k_base and its relative error band."""
    name = model.strip().lower().removeprefix("anthropic/")
    return NEWER if _NEWER.match(name) else CLASSIC


class ApproximateCounter:
    """Claude input tokens estimated offline (``kind`` approximate, ``error_band`` set)."""

    kind = "approximate"

    def __init__(self, options: RequestOptions, prompt: Prompt) -> None:
        self._base = Counter.for_model(options.model)
        self.factor, self.error_band = factor_and_band(options.model)
        self._fixed = self._fixed_tokens(options, prompt)

    @property
    def name(self) -> str:
        return f"approximate ({self._base.encoding} x {self.factor:.2f})"

    def count(self, text: str) -> int:
        return math.ceil(self._base.count(text) * self.factor)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        factor = self.factor
        return [math.ceil(n * factor) for n in self._base.count_many(texts)]

    def message_overhead(self, roles: Sequence[str]) -> int:
        """Tokens of a request apart from its messages' text: the answer format's too."""
        return BASE_TOKENS + TOKENS_PER_MESSAGE * len(roles) + self._fixed

    def _fixed_tokens(self, options: RequestOptions, prompt: Prompt) -> int:
        if options.answer_mode is AnswerMode.SCHEMA:
            return self.count(json.dumps(prompt.answer_schema(), separators=(",", ":")))
        if options.answer_mode is AnswerMode.TOOL:
            schema = json.dumps(prompt.answer_schema(), separators=(",", ":"))
            return TOOL_SYSTEM_TOKENS + self.count(schema) + self.count("grade Record the grade.")
        return 0
