"""Exact request token counts with tiktoken.

A chat request costs, per OpenAI's counting recipe, 3 tokens per message plus the
tokens of its role and content, plus 3 tokens priming the reply. The constant parts
(the system message when it uses no column, the roles, the overheads) are counted once
per file; the user messages are tokenized in contiguous slices, one per core, through
tiktoken's token buffer: the fastest calling style measured (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import tiktoken

from batchgrader import paths
from batchgrader.errors import TokenizerUnavailable
from batchgrader.prompting import catalogue, tokenizer_cache

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3

#: The encoding of a model the catalogue knows no encoding for (every current model).
DEFAULT_ENCODING = "o200k_base"


def encoding_name(model: str) -> str:
    """The tiktoken encoding of ``model``, from the model catalogue."""
    return catalogue.lookup(model).encoding or DEFAULT_ENCODING


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    folder = paths.tokenizer_cache_dir()
    try:
        with tokenizer_cache.tiktoken_folder():
            return tiktoken.get_encoding(name)
    except (OSError, ValueError) as exc:
        raise TokenizerUnavailable(
            f"The tokenizer encoding '{name}' could not be loaded from {folder}: "
            f"{tokenizer_cache.describe_error(exc)}",
            hint="tiktoken downloads its encodings on first use, which needs network access. "
            f"Run '{tokenizer_cache.FETCH_COMMAND}' once where there is network, copy the "
            "folder it fills, or set TIKTOKEN_CACHE_DIR to a folder holding the files "
            f"({tokenizer_cache.OFFLINE_DOCS}).",
        ) from None


# Text that exercises what could make two ways of counting differ: non-ASCII, emoji,
# special-token spellings, braces, tabs and runs of spaces.
_PROBE = 'Probe: "naïve" — 東京 🙂 <|endoftext|> <|fim_prefix|> {x}\n\ttabs  and   spaces '


@cache
def _token_length(name: str) -> Callable[[str], int]:
    """The fastest exact ``len(encode_ordinary(text))`` for the encoding ``name``.

    ``encode_ordinary`` returns a Python list of ints, built while holding the GIL, so
    threads counting at once queue for it. tiktoken's token buffer (what
    ``encode_to_numpy`` wraps, without needing numpy) is one object per text, and
    counting on two threads with it is ~1.3x faster (docs/benchmarks.md). With no
    allowed special tokens it is exactly ``encode_ordinary``; being tiktoken's core API
    rather than its public one, it is used only when present and when it agrees with
    ``encode_ordinary`` on a probe text.
    """
    enc = _encoding(name)
    ordinary = enc.encode_ordinary

    def plain(text: str) -> int:
        return len(ordinary(text))

    to_buffer = getattr(getattr(enc, "_core_bpe", None), "encode_to_tiktoken_buffer", None)
    if to_buffer is None:
        return plain
    no_special: set[str] = set()

    def fast(text: str) -> int:
        try:
            return memoryview(to_buffer(text, no_special)).nbytes // 4  # u32 token ids
        except UnicodeEncodeError:  # lone surrogates: encode_ordinary repairs them
            return plain(text)

    try:
        agrees = fast(_PROBE) == plain(_PROBE)
    except (TypeError, ValueError):
        agrees = False
    return fast if agrees else plain


@dataclass(frozen=True)
class Counter:
    """Counts request tokens exactly for one model, with its tiktoken encoding."""

    encoding: str
    threads: int
    kind: str = "exact"
    error_band: float = 0.0

    @property
    def name(self) -> str:
        return self.encoding

    @classmethod
    def for_model(cls, model: str, threads: int | None = None) -> Counter:
        name = encoding_name(model)
        _encoding(name)  # fail early, with the friendly error
        return cls(name, threads or min(os.cpu_count() or 1, 8))

    def count(self, text: str) -> int:
        """Tokens of one text (special-token strings count as plain text)."""
        return _token_length(self.encoding)(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, one contiguous slice per thread."""
        length = _token_length(self.encoding)
        n = len(texts)
        if n < 2_000 or self.threads == 1:
            return [length(t) for t in texts]
        step = -(-n // self.threads)

        def work(start: int) -> list[int]:
            return [length(t) for t in texts[start : start + step]]

        with ThreadPoolExecutor(self.threads) as pool:
            parts = list(pool.map(work, range(0, n, step)))
        return [count for part in parts for count in part]

    def message_overhead(self, roles: Sequence[str]) -> int:
        """Tokens of a request apart from its message contents."""
        return REPLY_PRIMING + sum(TOKENS_PER_MESSAGE + self.count(role) for role in roles)
