"""Every command has help and is documented in docs/commands.md."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batchgrader.settings import Settings, iter_settings

Invoke = Callable[..., Result]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "commands.md"
COMMANDS = [
    ["grade"],
    ["count"],
    ["split"],
    ["costs"],
    ["config", "show"],
    ["config", "path"],
    ["jobs", "list"],
    ["jobs", "show"],
    ["jobs", "resume"],
    ["jobs", "retry"],
    ["jobs", "cancel"],
    ["jobs", "clean"],
    ["jobs", "adopt"],
    ["jobs", "forget-limits"],
    ["report"],
    ["docs"],
    ["tokenizer", "fetch"],
    ["tokenizer", "status"],
    ["tokenizer", "path"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_and_docs(bg: Invoke, command: list[str]) -> None:
    """--help works and the command appears in the docs."""
    result = bg(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert f"batchgrader {' '.join(command)}" in DOCS.read_text(encoding="utf-8")


def test_every_registered_command_is_listed(bg: Invoke) -> None:
    """The root help lists no command missing from this test's list."""
    result = bg("--help")
    assert result.exit_code == 0
    for top in {c[0] for c in COMMANDS}:
        assert top in result.stdout


def test_every_setting_is_documented() -> None:
    """docs/configuration.md has a row for every setting with its default."""
    text = (DOCS.parent / "configuration.md").read_text(encoding="utf-8")
    for key, value, _ in iter_settings(Settings()):
        assert f"| `{key}` | `{value}` |" in text, key


def test_cli_starts_without_the_openai_sdk() -> None:
    """Importing the CLI does not import openai (about a second that count never needs)."""
    code = "import sys, batchgrader.cli; sys.exit('openai' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(("given", "expected"), [(None, str(4 * 1024 * 1024)), ("65536", "65536")])
def test_cli_sets_the_csv_read_ahead_unless_the_user_did(given: str | None, expected: str) -> None:
    """The entry point bounds polars' CSV read-ahead (memory); a user's own value wins."""
    code = (
        "import os, sys\n"
        "from batchgrader.cli import main\n"
        "sys.argv = ['batchgrader', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ['POLARS_CSV_CHUNK_SIZE'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "POLARS_CSV_CHUNK_SIZE"}
    if given is not None:
        env["POLARS_CSV_CHUNK_SIZE"] = given
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == expected
