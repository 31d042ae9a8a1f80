"""The FLOOR baseline of ``grade``: the same job as directly as polars, tiktoken and openai allow.

It sends byte-for-byte the requests ``batchgrader grade`` sends, in the same batches,
and writes the same graded file, doing only the unavoidable work:

1. one eager ``pl.read_csv`` of the whole file (every column as text, as batchgrader
   reads it); null and blank texts are not sent;
2. the request tokens of every sent row, by the recipe of ``floor_count.py`` (constant
   parts counted once, ``prefix + text`` tokenized with ``encode_ordinary``, one
   contiguous slice of rows per thread);
3. one request line per row with ``json.dumps`` of the whole request object, then the
   same greedy cut into batches as batchgrader's planner (a batch closes when the next
   row would pass the token limit, 50,000 requests or 200 MiB);
4. per batch: the lines written to a ``.jsonl`` file, uploaded and a batch created with
   the openai SDK (at most ``--max-in-flight`` batches at once, batchgrader's default);
5. the batches polled back to back with no sleep (with ``polls_per_state=1`` every poll
   of the fake moves a batch one step), each output file downloaded whole as soon as
   its batch completes and parsed line by line with ``json.loads``;
6. the scores joined to the frame by row (from the ``custom_id``) with polars and the
   graded CSV written with ``write_csv``.

No ledger, no fingerprint, no atomic writes, no retries, no error handling beyond a
failed batch stopping the run. The API key and base URL come from ``OPENAI_API_KEY``
and ``OPENAI_BASE_URL``, as for batchgrader.

    python benchmarks/floor_grade.py FILE --system TEXT --prefix TEXT --schema JSON \\
        --out GRADED.csv --work DIR [--token-limit 500000] [--max-in-flight 2]

Prints one JSON object: ``{"rows", "requests", "batches", "input_tokens", "output"}``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl
import tiktoken
from openai import OpenAI

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINT: Final = "/v1/chat/completions"
SKIPPED = "skipped: empty text"


@dataclass
class Batch:
    """One planned batch: its request lines (newline-terminated, UTF-8)."""

    index: int
    lines: list[bytes]
    batch_id: str = ""


def count_tokens(texts: list[str], system: str, prefix: str, threads: int) -> list[int]:
    """Request tokens of each row: constant parts once, ``prefix + text`` per row."""
    encode = tiktoken.get_encoding("o200k_base").encode_ordinary
    constant = REPLY_PRIMING + len(encode(system))
    constant += sum(TOKENS_PER_MESSAGE + len(encode(role)) for role in ("system", "user"))
    n = len(texts)
    step = -(-n // threads) if n else 1

    def work(start: int) -> list[int]:
        return [constant + len(encode(prefix + t)) for t in texts[start : start + step]]

    with ThreadPoolExecutor(threads) as pool:
        return [t for part in pool.map(work, range(0, n, step)) for t in part]


def request_lines(
    rows: list[int], texts: list[str], args: argparse.Namespace, width: int
) -> list[bytes]:
    """One JSONL line per row: ``json.dumps`` of the whole request object."""
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "grade", "schema": json.loads(args.schema), "strict": True},
    }
    lines = []
    for row, text in zip(rows, texts, strict=True):
        request = {
            "custom_id": f"row-{row:0{width}d}",
            "method": "POST",
            "url": ENDPOINT,
            "body": {
                "model": args.model,
                "messages": [
                    {"role": "system", "content": args.system},
                    {"role": "user", "content": args.prefix + text},
                ],
                "max_completion_tokens": args.max_tokens,
                "response_format": response_format,
            },
        }
        line = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
        lines.append(line.encode() + b"\n")
    return lines


def plan(lines: list[bytes], tokens: list[int], token_limit: int) -> list[Batch]:
    """Greedy cut: a batch closes when the next row would pass a limit."""
    batches: list[Batch] = []
    start = n_tokens = n_bytes = 0
    for i, (line, count) in enumerate(zip(lines, tokens, strict=True)):
        if i > start and (
            i - start + 1 > MAX_REQUESTS
            or n_bytes + len(line) > MAX_BYTES
            or n_tokens + count > token_limit
        ):
            batches.append(Batch(len(batches), lines[start:i]))
            start, n_tokens, n_bytes = i, 0, 0
        n_tokens += count
        n_bytes += len(line)
    if len(lines) > start:
        batches.append(Batch(len(batches), lines[start:]))
    return batches


def run_batches(
    client: OpenAI, batches: list[Batch], work: Path, max_in_flight: int
) -> tuple[list[int], list[int], list[str]]:
    """Submit, poll and collect every batch; (rows, scores, answers) in completion order."""
    rows: list[int] = []
    scores: list[int] = []
    answers: list[str] = []
    queue = deque(batches)
    in_flight: list[Batch] = []
    while queue or in_flight:
        while queue and len(in_flight) < max_in_flight:
            batch = queue.popleft()
            path = work / f"chunk-{batch.index:04d}.jsonl"
            path.write_bytes(b"".join(batch.lines))
            batch.lines = []
            with path.open("rb") as handle:
                file_id = client.files.create(file=(path.name, handle), purpose="batch").id
            created = client.batches.create(
                input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h"
            )
            batch.batch_id = created.id
            in_flight.append(batch)
        for batch in list(in_flight):
            info = client.batches.retrieve(batch.batch_id)
            if info.status in ("validating", "in_progress", "finalizing"):
                continue
            if info.status != "completed" or info.output_file_id is None:
                raise SystemExit(f"batch {batch.index} ended {info.status}: {info.errors}")
            data = client.files.content(info.output_file_id).content
            for raw in data.splitlines():
                line = json.loads(raw)
                answer = line["response"]["body"]["choices"][0]["message"]["content"]
                rows.append(int(line["custom_id"][4:]))
                scores.append(json.loads(answer)["score"])
                answers.append(answer)
            in_flight.remove(batch)
    return rows, scores, answers


def grade(args: argparse.Namespace) -> dict[str, Any]:
    """The whole job; returns the figures printed as JSON."""
    df = pl.read_csv(args.file, infer_schema=False, empty_string_is_null=False)
    text = pl.col(args.column)
    blank = text.is_null() | (text.str.strip_chars() == "")
    sent = df.with_row_index("row").filter(~blank).select("row", text.alias("text"))
    rows, texts = sent["row"].to_list(), sent["text"].to_list()
    del sent
    tokens = count_tokens(texts, args.system, args.prefix, args.threads)
    width = max(6, len(str(max(df.height - 1, 0))))
    lines = request_lines(rows, texts, args, width)
    del texts
    batches = plan(lines, tokens, args.token_limit)
    del lines
    args.work.mkdir(parents=True, exist_ok=True)
    got_rows, scores, answers = run_batches(OpenAI(), batches, args.work, args.max_in_flight)
    results = pl.DataFrame(
        {"_row": got_rows, "llm_score": scores, "llm_response": answers},
        schema={"_row": pl.UInt32, "llm_score": pl.Int64, "llm_response": pl.String},
    )
    graded = (
        df.with_row_index("_row")
        .join(results, on="_row", how="left", maintain_order="left")
        .with_columns(
            pl.when(blank)
            .then(pl.lit(SKIPPED))
            .otherwise(pl.lit(None, pl.String))
            .alias("llm_error")
        )
        .drop("_row")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    graded.write_csv(args.out)
    return {
        "rows": df.height,
        "requests": len(rows),
        "batches": len(batches),
        "input_tokens": sum(tokens),
        "output": str(args.out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--column", default="response")
    parser.add_argument("--system", required=True, help="the constant system message")
    parser.add_argument("--prefix", required=True, help="the user message before the text")
    parser.add_argument("--schema", required=True, help="the answer's JSON schema")
    parser.add_argument("--model", default="gpt-4.1-mini")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--token-limit", type=int, default=500_000, help="input tokens per batch")
    parser.add_argument("--max-in-flight", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, required=True, help="the graded CSV")
    parser.add_argument("--work", type=Path, required=True, help="folder for request files")
    print(json.dumps(grade(parser.parse_args())))


if __name__ == "__main__":
    main()
