"""Builders shared by the tests: real input files, prompt files, dry-run output readers.

The "slow way" helpers here read files with the standard library (polars only for
Parquet) and render prompts row by row with ``Template.render``, so the tests compare
batchgrader's vectorised results with an independent, obviously-correct computation.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import Result

from batchgrader.prompting.prompts import EXAMPLES, TEXT, Prompt
from batchgrader.prompting.tokens import REPLY_PRIMING, TOKENS_PER_MESSAGE, Counter

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")


def write_table(
    path: Path, rows: Sequence[Mapping[str, Any]] | pl.DataFrame, fmt: str | None = None
) -> Path:
    """Write ``rows`` to ``path`` with polars in ``fmt`` (default: by the extension)."""
    df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(list(rows))
    fmt = fmt or path.suffix.lstrip(".")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "tsv":
        df.write_csv(path, separator="\t")
    elif fmt == "json":
        df.write_json(path)
    elif fmt == "jsonl":
        df.write_ndjson(path)
    elif fmt == "parquet":
        df.write_parquet(path)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return path


def write_prompt(path: Path, **keys: Any) -> Path:
    """Write a prompt TOML file from keyword arguments (strings, bools, tables)."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in keys.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables.extend(f"{k} = {json.dumps(v)}" for k, v in value.items())
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join([*lines, *tables]) + "\n", encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an input file, read the plain way (stdlib; polars only for Parquet)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix == ".json":
        rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return rows
    if suffix in (".jsonl", ".ndjson"):
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028
        return [json.loads(line) for line in lines if line.strip()]
    return pl.read_parquet(path).to_dicts()


def as_text(value: Any) -> str:
    """A cell as the prompt shows it (null is empty)."""
    return "" if value is None else str(value)


def slow_messages(
    prompt: Prompt, row: Mapping[str, Any], text_column: str
) -> list[tuple[str, str]]:
    """One row's (role, content) messages, rendered with ``Template.render``."""
    values = {name: as_text(value) for name, value in row.items()}
    values[TEXT] = as_text(row[text_column])
    values[EXAMPLES] = prompt.examples
    return [("system", prompt.system.render(values)), ("user", prompt.user.render(values))]


def request_tokens(counter: Counter, messages: Sequence[tuple[str, str]]) -> int:
    """Tokens of one request, counted the plain way (role, content) by message."""
    return REPLY_PRIMING + sum(
        TOKENS_PER_MESSAGE + counter.count(role) + counter.count(content)
        for role, content in messages
    )


def is_blank(value: Any) -> bool:
    """True when a graded text is skipped (null, empty or whitespace only)."""
    return value is None or not str(value).strip()


def slow_count(path: Path, prompt: Prompt, text_column: str, counter: Counter) -> dict[str, int]:
    """Rows, requests, skipped and input tokens of a file, one request at a time."""
    rows = read_rows(path)
    sent = [row for row in rows if not is_blank(row[text_column])]
    tokens = [request_tokens(counter, slow_messages(prompt, row, text_column)) for row in sent]
    return {
        "rows": len(rows),
        "requests": len(sent),
        "skipped": len(rows) - len(sent),
        "input_tokens": sum(tokens),
        "max_tokens": max(tokens, default=0),
    }


def chunk_files(folder: Path) -> list[Path]:
    """The request files of a dry-run folder, in chunk order."""
    return sorted(folder.glob("chunk-*.jsonl"))


def read_request_lines(folder: Path) -> list[str]:
    """Every request line of a dry-run folder, chunk after chunk (newlines stripped)."""
    lines: list[str] = []
    for path in chunk_files(folder):
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path} does not end with a newline"
        lines.extend(data.decode("utf-8").split("\n")[:-1])
    return lines


def break_tokenizer(monkeypatch: Any, tmp_path: Path) -> Path:
    """Make tiktoken's encodings unloadable: empty cache dir, downloads fail fast.

    Clears both tiktoken's registry and batchgrader's cache; call
    ``tokens._encoding.cache_clear()`` again after the test.
    """
    import tiktoken.registry

    from batchgrader.prompting import tokens

    empty = tmp_path / "empty-tiktoken-cache"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens._encoding.cache_clear()
    return empty


def child_env() -> dict[str, str]:
    """The environment of a ``batchgrader`` child process: this test's, polling gently.

    The fake fixtures poll every 1-5 ms so that in-process runs finish at once; a child
    whose batch the test holds still (``polls_per_state = HOLD``) would poll 200 times a
    second for as long as the test keeps it there, a core's worth of CPU taken from the
    other tests. At most every 0.1 s it costs nothing: after a change the interval drops
    back to the first one, so a released batch is followed as fast as before.
    """
    return {**os.environ, "BATCHGRADER_RUN__POLL_MAX_INTERVAL_SECONDS": "0.1"}


def fault_outcome(result: Result) -> str:
    """How a command met a fault: "recovers" (exit 0) or "stops" (exit 1 with one clear
    message and no traceback); any other exit fails the test."""
    if result.exit_code == 0:
        return "recovers"
    assert result.exit_code == 1, result.output
    assert "Error:" in result.stderr
    assert "Traceback" not in result.output
    return "stops"
