"""The NAIVE baseline: how the seed's first version counted request tokens.

pandas ``read_csv`` of the whole file, then ``df.apply`` row by row, building each
request's messages and counting them with the OpenAI cookbook's recipe
(``num_tokens_from_messages``): ``encoding.encode`` of every role and content, the
constant system prompt included, on every row, on one core. Blank rows are skipped as
batchgrader skips them, so the total is comparable.

    python benchmarks/naive_count.py FILE --system TEXT --prefix TEXT [--column response]

Prints one JSON object: ``{"requests": N, "input_tokens": N}``.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the dev group
import tiktoken


def num_tokens_from_messages(messages: list[dict[str, str]], encoding: tiktoken.Encoding) -> int:
    """The cookbook recipe: 3 per message, every value encoded, 3 priming the reply."""
    num_tokens = 0
    for message in messages:
        num_tokens += 3
        for value in message.values():
            num_tokens += len(encoding.encode(value))
    return num_tokens + 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--column", default="response")
    parser.add_argument("--system", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    encoding = tiktoken.get_encoding("o200k_base")
    df = pd.read_csv(args.file)

    def row_tokens(row: pd.Series) -> int:
        text = row[args.column]
        if not isinstance(text, str) or not text.strip():
            return 0
        messages = [
            {"role": "system", "content": args.system},
            {"role": "user", "content": args.prefix + text},
        ]
        return num_tokens_from_messages(messages, encoding)

    df["tokens"] = df.apply(row_tokens, axis=1)
    requests = int((df["tokens"] > 0).sum())
    print(json.dumps({"requests": requests, "input_tokens": int(df["tokens"].sum())}))


if __name__ == "__main__":
    main()
