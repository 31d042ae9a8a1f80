"""docs/report.md against the command: the JSON keys it documents are exactly the keys
``report --json`` emits, and every option is documented and has help."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import typer
from typer.testing import Result

from batchgrader.cli import app
from tests.fakes.batch_api import FakeBatchAPI
from tests.helpers import write_table

Invoke = Callable[..., Result]
DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE = DOCS / "report.md"
#: Objects whose keys are data (codes, values, columns, metrics), not names.
DATA_KEYS = {"failed", "distribution", "shares", "not_reported", "undefined"}


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value: ``a.b``, ``a[].b`` for the elements of a list."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            if key not in DATA_KEYS:
                found |= key_paths(inner, path)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                found |= key_paths(item, prefix + "[]")
    return found


def documented_example() -> dict[str, Any]:
    """The JSON example of docs/report.md."""
    text = PAGE.read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert block is not None
    example: dict[str, Any] = json.loads(block.group(1))
    return example


def documented_table() -> set[str]:
    """The keys listed in the key table of docs/report.md."""
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("| key | meaning |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE))


def emitted(bg: Invoke, folder: Path) -> dict[str, Any]:
    """``report --json`` of a real graded file with every section filled."""
    texts = [f"Essay {i} on rivers and valleys. [[score:{i % 5 + 1}]]" for i in range(12)]
    human = [(i + i // 4) % 5 + 1 for i in range(12)]
    src = write_table(folder / "essays.csv", pl.DataFrame({"response": texts, "human": human}))
    schema = folder / "schema.json"
    properties = {
        "reasoning": {"type": "string"},
        "tone": {"type": "string", "enum": ["cold", "warm"]},
        "score": {"type": "integer"},
    }
    schema.write_text(json.dumps({"type": "object", "properties": properties}))
    assert bg("grade", src, "--schema", schema).exit_code == 0
    result = bg("report", folder / "output" / "essays.graded.csv", "--labels", "human", "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["fields"] and data["usage"] and data["agreement"]["disagreements"]
    return data


def test_documented_json_keys_are_the_emitted_ones(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The example and the key table of docs/report.md have exactly the emitted keys."""
    keys = key_paths(emitted(bg, isolated_env))
    assert key_paths(documented_example()) == keys
    assert documented_table() == keys


def test_every_option_has_help_and_is_documented() -> None:
    """Each parameter of ``report`` has help text and appears in docs/report.md."""
    command = typer.main.get_command(app).commands["report"]  # type: ignore[attr-defined]
    page = PAGE.read_text(encoding="utf-8")
    assert command.help and "Can the judge be trusted?" in command.help
    for param in command.params:
        if param.name == "help":
            continue
        assert getattr(param, "help", None) or param.name == "graded_file", param.name
        names = [*param.opts] if param.param_type_name == "option" else ["GRADED_FILE"]
        assert any(f"`{n}" in page for n in names), names


def test_the_command_is_listed_with_the_others() -> None:
    """docs/commands.md has a row for ``batchgrader report`` pointing at report.md."""
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if "`batchgrader report" in line)
    assert "report.md" in row
