"""The FLOOR baseline: the total request tokens of a file, as directly as the libraries allow.

One polars read of the graded column (the whole column in memory), blank rows dropped
in polars, the constant system message and the per-message overheads counted once, and
the user messages (``prefix + text``) tokenized with tiktoken on every core: one
contiguous slice of rows per thread, tiktoken's token buffer (what ``encode_to_numpy``
wraps) in a loop, only the sum kept: the fastest calling style measured by
``bench_tokenize_styles.py``. It computes the same number as ``batchgrader count`` by
OpenAI's recipe::

    3 + sum over messages of (3 + tokens(role) + tokens(content))

    python benchmarks/floor_count.py FILE --system TEXT --prefix TEXT [--column response]

Prints one JSON object: ``{"requests": N, "input_tokens": N}``.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import tiktoken

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3


def count_file(path: str, column: str, system: str, prefix: str, threads: int) -> tuple[int, int]:
    """(requests, input tokens) of the file."""
    enc = tiktoken.get_encoding("o200k_base")
    encode = enc.encode_ordinary
    to_buffer = enc._core_bpe.encode_to_tiktoken_buffer
    no_special: set[str] = set()
    texts = pl.read_csv(path, columns=[column], infer_schema=False)[column]
    texts = texts.filter(texts.str.strip_chars() != "")  # nulls and blanks are not sent
    n = texts.len()
    batch = texts.to_list()
    del texts
    step = -(-n // threads) if n else 1

    def work(start: int) -> int:
        return sum(
            memoryview(to_buffer(prefix + t, no_special)).nbytes // 4
            for t in batch[start : start + step]
        )

    with ThreadPoolExecutor(threads) as pool:
        user_tokens = sum(pool.map(work, range(0, n, step)))
    per_request = (
        REPLY_PRIMING
        + TOKENS_PER_MESSAGE
        + len(encode("system"))
        + len(encode(system))
        + TOKENS_PER_MESSAGE
        + len(encode("user"))
    )
    return n, n * per_request + user_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--column", default="response")
    parser.add_argument("--system", required=True, help="the constant system message")
    parser.add_argument("--prefix", required=True, help="the user message before the text")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    requests, tokens = count_file(args.file, args.column, args.system, args.prefix, args.threads)
    print(json.dumps({"requests": requests, "input_tokens": tokens}))


if __name__ == "__main__":
    main()
