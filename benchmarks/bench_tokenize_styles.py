"""Which way of calling tiktoken counts a column of texts fastest?

Counts the tokens of ``"Please evaluate the following text: " + response`` for the
first N non-blank rows of a benchmark dataset with o200k_base, in several calling
styles, each run several times in rotation (so a burst of load elsewhere on the machine
hits every style alike); reports the median wall time, CPU time and speed-up over a
plain single-threaded loop. Every style must produce the same counts.

    uv run python benchmarks/bench_tokenize_styles.py --rows 20000 --runs 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import tiktoken
from gen_data import generate

PREFIX = "Please evaluate the following text: "
Style = Callable[[list[str]], list[int]]


def styles(enc: tiktoken.Encoding, cores: int) -> dict[str, Style]:
    """The calling styles, by name; each maps messages to their token counts."""
    encode = enc.encode_ordinary

    def loop(texts: list[str]) -> list[int]:
        return [len(encode(t)) for t in texts]

    def batch(threads: int) -> Style:
        def run(texts: list[str]) -> list[int]:
            return [len(t) for t in enc.encode_ordinary_batch(texts, num_threads=threads)]

        return run

    def per_row_map(threads: int) -> Style:
        def run(texts: list[str]) -> list[int]:
            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(lambda t: len(encode(t)), texts))

        return run

    def chunks(threads: int, size: int) -> Style:
        def run(texts: list[str]) -> list[int]:
            def work(start: int) -> list[int]:
                return [len(encode(t)) for t in texts[start : start + size]]

            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(work, range(0, len(texts), size)))
            return [c for part in parts for c in part]

        return run

    def slices(threads: int, fn: Callable[[str], int] | None = None) -> Style:
        count = fn or (lambda t: len(encode(t)))

        def run(texts: list[str]) -> list[int]:
            step = -(-len(texts) // threads)

            def work(start: int) -> list[int]:
                return [count(t) for t in texts[start : start + step]]

            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(work, range(0, len(texts), step)))
            return [c for part in parts for c in part]

        return run

    def numpy_len(t: str) -> int:
        return len(enc.encode_to_numpy(t, disallowed_special=()))

    to_buffer = enc._core_bpe.encode_to_tiktoken_buffer  # what encode_to_numpy wraps
    no_special: set[str] = set()

    def buffer_len(t: str) -> int:
        return memoryview(to_buffer(t, no_special)).nbytes // 4

    return {
        "loop, 1 thread": loop,
        f"encode_ordinary_batch, {cores} threads": batch(cores),
        "encode_ordinary_batch, 8 threads (default)": batch(8),
        f"pool.map per row, {cores} threads": per_row_map(cores),
        f"chunks of 1,000 rows, {cores} threads": chunks(cores, 1_000),
        f"one contiguous slice per thread, {cores} threads": slices(cores),
        f"one contiguous slice per thread, {2 * cores} threads": slices(2 * cores),
        f"slice per thread + encode_to_numpy, {cores} threads": slices(cores, numpy_len),
        f"slice per thread + token buffer (private API), {cores} threads": slices(
            cores, buffer_len
        ),
        "loop + token buffer (private API), 1 thread": slices(1, buffer_len),
    }


def load_messages(path: Path, rows: int) -> list[str]:
    """The first ``rows`` non-blank user messages of the dataset."""
    texts = pl.read_csv(path, columns=["response"], infer_schema=False, n_rows=rows * 2)
    col = texts["response"]
    col = col.filter(col.str.strip_chars() != "").head(rows)
    return (PREFIX + col).to_list()


def run(rows: int, runs: int, source: Path) -> dict[str, Any]:
    """Measure every style; the result is JSON-ready."""
    enc = tiktoken.get_encoding("o200k_base")
    cores = os.cpu_count() or 1
    texts = load_messages(source, rows)
    # Building the messages: in Python per row, or by polars before the list is made.
    col = pl.read_csv(source, columns=["response"], infer_schema=False, n_rows=rows)["response"]
    started = time.perf_counter()
    in_python = [PREFIX + t for t in col.to_list()]
    python_prefix = time.perf_counter() - started
    started = time.perf_counter()
    in_polars = (PREFIX + col).to_list()
    polars_prefix = time.perf_counter() - started
    assert in_python == in_polars
    candidates = styles(enc, cores)
    expected = candidates["loop, 1 thread"](texts)
    wall: dict[str, list[float]] = {name: [] for name in candidates}
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, style in candidates.items():
            t0, c0 = time.perf_counter(), time.process_time()
            counts = style(texts)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            assert counts == expected, name
    base = statistics.median(wall["loop, 1 thread"])
    results = [
        {
            "style": name,
            "wall_s": statistics.median(wall[name]),
            "cpu_s": statistics.median(cpu[name]),
            "speedup": base / statistics.median(wall[name]),
        }
        for name in candidates
    ]
    return {
        "rows": len(texts),
        "tokens": sum(expected),
        "runs": runs,
        "cores": cores,
        "prefix_python_s": python_prefix,
        "prefix_polars_s": polars_prefix,
        "styles": results,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown table."""
    lines = [
        f"{result['rows']:,} user messages, {result['tokens']:,} tokens, o200k_base, "
        f"median of {result['runs']} runs on {result['cores']} cores.",
        "",
        "| calling style | wall (s) | CPU (s) | speed-up vs loop |",
        "|---|---:|---:|---:|",
    ]
    styles_ = result["styles"]
    assert isinstance(styles_, list)
    for row in sorted(styles_, key=lambda r: r["wall_s"]):
        lines.append(
            f"| {row['style']} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | {row['speedup']:.2f}x |"
        )
    lines += [
        "",
        f"Building the messages (prefix + text) for those rows: "
        f"{result['prefix_python_s'] * 1000:.0f} ms in Python per row, "
        f"{result['prefix_polars_s'] * 1000:.0f} ms with polars before `to_list()`.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, default=None, help="default: the 100k dataset")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = parser.parse_args()
    source = args.source if args.source is not None else generate(100_000)
    result = run(args.rows, args.runs, source)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
