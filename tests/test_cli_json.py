"""Every ``--json`` output has the shape docs/json.md documents, and one convention."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import typer.main
from typer.testing import Result

from batchgrader.cli import app
from batchgrader.cli._json import dumps, timestamp
from tests.fakes.batch_api import FakeBatchAPI
from tests.helpers import write_table

Invoke = Callable[..., Result]
DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
HEADING = re.compile(r"^## `batchgrader (?P<command>[^`]+?) --json`", re.M)
BLOCK = re.compile(r"```json\n(?P<body>.*?)\n```", re.S)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def documented() -> dict[str, Any]:
    """``{"grade": example, ..., "error": example}`` from the page's sections."""
    text = DOC.read_text(encoding="utf-8")
    examples: dict[str, Any] = {}
    sections = re.split(r"^## ", text, flags=re.M)
    for section in sections[1:]:
        heading = HEADING.match("## " + section)
        block = BLOCK.search(section)
        if block is None:
            continue
        name = heading.group("command") if heading else section.split("\n", 1)[0].strip()
        examples[name] = json.loads(block.group("body"))
    return examples


def check(doc: Any, got: Any, where: str = "$") -> None:
    """``got`` has the documented keys and kinds (a null may stand for any value)."""
    if got is None or doc is None or (isinstance(doc, str) and doc.startswith("<")):
        return  # null may stand for any value; "<...>" is any value
    if isinstance(doc, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        if doc and all(k.startswith("<") for k in doc):  # a map: any keys
            (value,) = doc.values()
            for key, item in got.items():
                check(value, item, f"{where}.{key}")
            return
        assert set(got) == set(doc), f"{where}: keys {sorted(got)} != documented {sorted(doc)}"
        for key in doc:
            check(doc[key], got[key], f"{where}.{key}")
    elif isinstance(doc, list):
        assert isinstance(got, list), f"{where}: {got!r} is not a list"
        for n, item in enumerate(got):
            check(doc[0], item, f"{where}[{n}]")
    elif isinstance(doc, bool):
        assert isinstance(got, bool), f"{where}: {got!r} is not a boolean"
    elif isinstance(doc, (int, float, Decimal)):
        assert isinstance(got, (int, float, Decimal)) and not isinstance(got, bool), (
            f"{where}: {got!r} is not a number"
        )
    else:
        assert isinstance(got, str), f"{where}: {got!r} is not a string"


def emitted(result: Result, code: int = 0) -> Any:
    """The one JSON document on stdout (money read exactly)."""
    assert result.exit_code == code, result.output
    return json.loads(result.stdout, parse_float=Decimal)


def _input(folder: Path, name: str = "answers.csv", n: int = 5) -> Path:
    texts = [f"Note {i}: bridges expand in summer by {i + 2} mm." for i in range(n)]
    texts[3] = ""  # skipped
    return write_table(folder / name, pl.DataFrame({"id": list(range(n)), "response": texts}))


@pytest.fixture
def chunked(isolated_env: Path) -> Path:
    """An input of 5 rows (one blank) planned as chunks of 3 rows."""
    (isolated_env / "batchgrader.toml").write_text("[chunking]\nsplit_row_limit = 3\n")
    return _input(isolated_env)


@pytest.fixture
def graded(bg: Invoke, fake_api: FakeBatchAPI, chunked: Path) -> str:
    """A graded job (one row failed): its id."""
    fake_api.fail_requests["row-000002"] = (500, "server_error", "boom")
    report = emitted(bg("grade", chunked, "--json"), code=1)
    check(documented()["grade"], report)
    job_id: str = report["files"][0]["job_id"]
    return job_id


def test_every_json_command_is_documented() -> None:
    """Each command that takes --json is named on docs/json.md."""
    text = DOC.read_text(encoding="utf-8")

    def walk(command: Any, path: list[str]) -> Iterator[str]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])
        if any("--json" in p.opts for p in getattr(command, "params", [])):
            yield " ".join(path)

    commands = list(walk(typer.main.get_command(app), []))
    assert "grade" in commands and "jobs show" in commands
    for command in commands:
        assert f"`batchgrader {command} --json`" in text, command


def test_grade_and_resume_summary(bg: Invoke, graded: str) -> None:
    """grade --json (in the fixture) and jobs resume --json print the documented summary."""
    resumed = emitted(bg("jobs", "resume", graded, "--json"), code=1)
    check(documented()["grade"], resumed)
    summary = resumed["files"][0]
    assert (summary["failed"], summary["skipped"], summary["graded"]) == (1, 1, 3)
    assert isinstance(summary["cost"], Decimal) and summary["cost"] > 0


def test_dry_run(bg: Invoke, chunked: Path) -> None:
    """grade --dry-run --json: chunks and rows numbered from 1, as the files are named."""
    report = emitted(bg("grade", chunked, "--dry-run", "--json"))
    check(documented()["grade --dry-run"], report)
    chunks = report["plans"][0]["chunks"]
    assert [(c["chunk"], c["first_row"], c["last_row"]) for c in chunks] == [(1, 1, 4), (2, 5, 5)]
    assert [c["file"] for c in chunks] == ["chunk-0001.jsonl", "chunk-0002.jsonl"]


def test_count(bg: Invoke, isolated_env: Path) -> None:
    """count --json of two files, with their total."""
    first, second = _input(isolated_env, "a.csv"), _input(isolated_env, "b.csv")
    report = emitted(bg("count", first, second, "--json"))
    check(documented()["count"], report)
    assert report["total"]["rows"] == 10
    assert report["files"][0]["max_row"] >= 1


def test_split(bg: Invoke, isolated_env: Path) -> None:
    """split --json: parts numbered from 1 with their input rows from 1."""
    report = emitted(bg("split", _input(isolated_env), "--rows", 3, "--json"))
    check(documented()["split"], report)
    parts = report["files"][0]["parts"]
    assert [(p["part"], p["first_row"], p["last_row"]) for p in parts] == [(1, 1, 3), (2, 4, 5)]


def test_costs_and_export(bg: Invoke, graded: str, isolated_env: Path) -> None:
    """costs --json (money as numbers, UTC timestamps with Z) and costs --export --json."""
    report = emitted(bg("costs", "--json"))
    check(documented()["costs"], report)
    assert STAMP.match(report["generated_at"])
    assert STAMP.match(report["windows"][1]["since"])
    assert isinstance(report["windows"][0]["spent"]["cost_usd"], Decimal)
    target = isolated_env / "usage.jsonl"
    check(documented()["costs --export FILE"], emitted(bg("costs", "--export", target, "--json")))


def test_config(bg: Invoke, chunked: Path) -> None:
    """config show --json and config path --json."""
    check(documented()["config show"], emitted(bg("config", "show", "--json")))
    check(documented()["config path"], emitted(bg("config", "path", "--json")))


def test_jobs(bg: Invoke, graded: str) -> None:
    """jobs list, show, clean and forget-limits --json; chunk rows numbered from 1."""
    listed = emitted(bg("jobs", "list", "--all", "--json"))
    check(documented()["jobs list"], listed)
    job = listed["jobs"][0]
    assert STAMP.match(job["created_at"]) and job["age_seconds"] >= 0
    shown = emitted(bg("jobs", "show", graded, "--json"))
    check(documented()["jobs show"], shown)
    assert [(c["chunk"], c["first_row"]) for c in shown["chunks"]] == [(1, 1), (2, 5)]
    check(documented()["jobs clean"], emitted(bg("jobs", "clean", "--json")))
    check(documented()["jobs forget-limits"], emitted(bg("jobs", "forget-limits", "--json")))


@pytest.mark.parametrize(
    "args",
    [
        ["grade", "missing.csv", "--json"],
        ["grade", "--frobnicate", "--json"],
        ["split", "x.csv", "--rows", "0", "--json"],
        ["jobs", "show", "--json"],
        ["--json", "count"],
    ],
    ids=["input", "unknown option", "bad value", "missing argument", "root option"],
)
def test_errors_are_one_envelope(bg: Invoke, args: list[str]) -> None:
    """Input and usage errors alike print the documented envelope alone on stdout, exit 2."""
    result = bg(*args)
    envelope = emitted(result, code=2)
    check(documented()["Errors"], envelope)
    assert envelope["error"]["code"] in ("input", "usage")
    assert envelope["error"]["message"]
    assert result.stderr == ""


def test_money_is_exact_decimal_text() -> None:
    """Decimals are written as JSON numbers digit for digit, never through a float."""
    text = dumps({"cost": Decimal("0.0000616"), "big": Decimal("1234567.123456789012345678")})
    assert '"cost": 0.0000616' in text
    assert '"big": 1234567.123456789012345678' in text
    assert json.loads(text, parse_float=Decimal)["big"] == Decimal("1234567.123456789012345678")
    assert dumps(Decimal("6.16E-5")) == "0.0000616"
    assert dumps(Decimal("-0")) == "0"


def test_timestamps_are_utc_with_z() -> None:
    """Every timestamp is written in UTC to the second with Z, whatever its zone."""
    paris = datetime(2026, 11, 1, 10, 30, 15, 999, tzinfo=timezone(timedelta(hours=1)))
    assert timestamp(paris) == "2026-11-01T09:30:15Z"
    naive = datetime(2026, 11, 1, 9, 30, tzinfo=UTC).replace(tzinfo=None)
    assert timestamp(naive) == "2026-11-01T09:30:00Z"  # naive = UTC
    at = datetime(2026, 11, 1, tzinfo=UTC)
    assert dumps({"at": at}) == '{\n  "at": "2026-11-01T00:00:00Z"\n}'
