"""Exact request token counts with tiktoken.

A chat request costs, per OpenAI's counting recipe, 3 tokens per message plus the
tokens of its role and content, plus 3 tokens priming the reply. The constant parts
(the system message when it uses no column, the roles, the overheads) are counted once
per file; the user messages are tokenized in contiguous slices, one per core, which is
the fastest calling style measured (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import tiktoken

from batchgrader.errors import TokenizerUnavailable

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3

# Models tokenized with cl100k_base; every current model (gpt-4o, gpt-4.1, gpt-5.x,
# o-series and newer) uses o200k_base.
_CL100K_PREFIXES = ("gpt-3.5", "gpt-4-", "gpt-35")
_CL100K_EXACT = ("gpt-4",)

# Context windows (input + output tokens) by model prefix, longest prefix wins.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-3.5-turbo": 16_385,
    "gpt-4": 8_192,
    "gpt-4-turbo": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.5": 128_000,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}


def encoding_name(model: str) -> str:
    """The tiktoken encoding of ``model``."""
    name = model.lower().removeprefix("openai/")
    if name in _CL100K_EXACT or name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


def context_window(model: str) -> int | None:
    """The model's context window, or None when unknown."""
    name = model.lower().removeprefix("openai/")
    matches = [p for p in CONTEXT_WINDOWS if name == p or name.startswith(p + "-")]
    if name.startswith("gpt-5"):
        matches.append("gpt-5")
    return CONTEXT_WINDOWS[max(matches, key=len)] if matches else None


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding(name)
    except (OSError, ValueError) as exc:
        cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
        where = f" from {cache_dir}" if cache_dir else ""
        raise TokenizerUnavailable(
            f"The tokenizer encoding '{name}' could not be loaded{where}: {exc}",
            hint="tiktoken downloads its encodings on first use. Connect once, or point "
            "TIKTOKEN_CACHE_DIR at a folder holding the encoding files.",
        ) from None


@dataclass(frozen=True)
class Counter:
    """Counts request tokens for one model."""

    encoding: str
    threads: int

    @classmethod
    def for_model(cls, model: str, threads: int | None = None) -> Counter:
        name = encoding_name(model)
        _encoding(name)  # fail early, with the friendly error
        return cls(name, threads or min(os.cpu_count() or 1, 8))

    def count(self, text: str) -> int:
        """Tokens of one text (special-token strings count as plain text)."""
        return len(_encoding(self.encoding).encode_ordinary(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, one contiguous slice per thread."""
        encode = _encoding(self.encoding).encode_ordinary
        n = len(texts)
        if n < 2_000 or self.threads == 1:
            return [len(encode(t)) for t in texts]
        step = -(-n // self.threads)

        def work(start: int) -> list[int]:
            return [len(encode(t)) for t in texts[start : start + step]]

        with ThreadPoolExecutor(self.threads) as pool:
            parts = list(pool.map(work, range(0, n, step)))
        return [count for part in parts for count in part]

    def message_overhead(self, roles: Sequence[str]) -> int:
        """Tokens of a request apart from its message contents."""
        return REPLY_PRIMING + sum(TOKENS_PER_MESSAGE + self.count(role) for role in roles)

    def request_tokens(self, messages: Sequence[tuple[str, str]]) -> int:
        """Tokens of one request, counted the plain way (role, content) by message."""
        return REPLY_PRIMING + sum(
            TOKENS_PER_MESSAGE + self.count(role) + self.count(content)
            for role, content in messages
        )
