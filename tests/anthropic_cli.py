"""Builders shared by the tests that run batchgrader against the fake Anthropic API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import Result

from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.judge import judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
MODEL = "claude-haiku-4-5"  # not deprecated in the SDK (a warning is an error here)
USER = "Please evaluate the following text: "


def texts(n: int, tag: str = "") -> list[str]:
    return [f"Essay {tag}{i}: rivers carve valleys over {i + 3} thousand years." for i in range(n)]


def write_input(folder: Path, rows: list[str], name: str = "d.csv") -> Path:
    frame = pl.DataFrame({"id": list(range(len(rows))), "response": rows})
    return write_table(folder / name, frame)


def graded(folder: Path, name: str = "d.graded.csv") -> pl.DataFrame:
    return pl.read_csv(folder / "output" / name)


def scores(rows: list[str]) -> list[int]:
    """What the fake judge answers for each text under the default prompt."""
    return [judge_score(USER + t) for t in rows]


def assert_scores(frame: pl.DataFrame, rows: list[str]) -> None:
    assert frame["id"].to_list() == list(range(len(rows)))
    assert frame["llm_score"].to_list() == scores(rows)
    assert frame["llm_error"].null_count() == len(rows)


def job_id(bg: Invoke) -> str:
    listed = bg("jobs", "list", "--all", "--json")
    assert listed.exit_code == 0, listed.output
    return str(json.loads(listed.stdout)["jobs"][0]["id"])


def created_requests(fake: FakeAnthropicAPI) -> list[list[dict[str, Any]]]:
    """The requests of every create call the fake answered, in order."""
    return [c.payload["requests"] for c in fake.calls if c.route == "create" and c.payload]


def summary(result: Result) -> dict[str, Any]:
    files: list[dict[str, Any]] = json.loads(result.stdout)["files"]
    return files[0]
