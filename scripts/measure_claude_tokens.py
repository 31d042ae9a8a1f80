"""Measure batchgrader's offline Claude token approximation against ``count_tokens``.

Usage::

    ANTHROPIC_API_KEY=... uv run python scripts/measure_claude_tokens.py \\
        --model claude-haiku-4-5 data.csv [more files] [--column response] [--limit 300]

Each text (a row's column of a CSV/JSONL/Parquet file, or a whole ``.txt``/``.md``
file) is sent alone as one user message to the free ``count_tokens`` endpoint and
counted offline the way batchgrader does (``providers/anthropic/tokens.py``). The
script prints the offline factor and band in force, then the distribution of the
relative error ``(offline - exact) / exact``: mean, 5th and 95th percentiles, the worst
case and the share of texts within the band. ``docs/providers.md`` says what the
shipped band is based on; run this on your own data to see how it does there.
``ANTHROPIC_BASE_URL`` points it at another server (the tests' fake counts with
o200k_base, so there the offline count is the factor's excess: +20% or +60%).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import polars as pl

from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import load_prompt
from batchgrader.providers.anthropic import AnthropicProvider
from batchgrader.settings.loading import load_settings


def _texts(paths: list[Path], column: str, limit: int) -> list[str]:
    texts: list[str] = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in (".txt", ".md"):
            texts.append(path.read_text(encoding="utf-8"))
        elif suffix in (".jsonl", ".ndjson"):
            texts += pl.read_ndjson(path)[column].drop_nulls().cast(pl.String).to_list()
        elif suffix == ".parquet":
            texts += pl.read_parquet(path)[column].drop_nulls().cast(pl.String).to_list()
        else:
            texts += pl.read_csv(path)[column].drop_nulls().cast(pl.String).to_list()
    return [t for t in texts if t.strip()][:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default="claude-haiku-4-5")
    parser.add_argument("--column", default="response")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    settings = load_settings().settings
    options = RequestOptions(
        model=args.model,
        endpoint="/v1/messages",
        max_tokens=16,
        temperature=None,
        answer_mode=AnswerMode.TEXT,
    )
    provider = AnthropicProvider(settings.anthropic, settings.api)
    offline = provider.counter(options, load_prompt("generic", None))
    exact = provider.request_counter(args.model)
    if exact is None:
        raise SystemExit("Set ANTHROPIC_API_KEY (count_tokens needs a key).")
    texts = _texts(args.files, args.column, args.limit)
    bodies = [{"model": args.model, "messages": [{"role": "user", "content": t}]} for t in texts]
    try:
        counted = exact.count_bodies(bodies)
    finally:
        exact.close()
    overhead = offline.message_overhead(("user",))
    errors = sorted(
        (overhead + offline.count(text) - n) / n for text, n in zip(texts, counted, strict=True)
    )
    band = offline.error_band
    within = sum(1 for e in errors if abs(e) <= band) / len(errors)
    print(f"{args.model}: {offline.name}, band ±{band:.0%}, {len(errors)} texts")
    print(
        f"relative error: mean {statistics.fmean(errors):+.1%}, "
        f"p5 {errors[len(errors) // 20]:+.1%}, p95 {errors[(len(errors) * 19) // 20]:+.1%}, "
        f"worst {max(errors, key=abs):+.1%}; within the band: {within:.0%}"
    )


if __name__ == "__main__":
    main()
