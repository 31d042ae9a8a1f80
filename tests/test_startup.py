"""Start-up: help, --version and shell completion load none of the heavy libraries.

Speed itself is measured by ``benchmarks/bench_startup.py``, never asserted here; these
tests hold the cause of a slow start-up off: a heavy import reachable from start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: What ``--help``, ``--version`` and a TAB must not import (each costs 0.05-1 s).
HEAVY = {"polars", "openai", "anthropic", "tiktoken", "pydantic_settings", "tenacity", "filelock"}

#: Runs the console script's entry point as ``batchgrader ARGS...`` and records the
#: top-level packages imported by then (stdout is left to the command).
PROBE = """
import json, sys
args, report = json.loads(sys.argv[1]), sys.argv[2]
sys.argv = ["batchgrader", *args]
from batchgrader.cli import main
code = 0
try:
    main()
except SystemExit as exit:
    code = exit.code or 0
with open(report, "w") as f:
    json.dump({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}, f)
"""


def start(
    tmp_path: Path, args: list[str], env: dict[str, str] | None = None
) -> tuple[str, set[str]]:
    """Run ``batchgrader ARGS`` in a fresh interpreter: its stdout and the packages it loaded."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), str(report)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["code"] == 0, done.stderr
    return done.stdout, set(result["modules"])


def completion(words: str) -> dict[str, str]:
    """The environment bash's completion function sets for a TAB after ``words``."""
    return {
        "_BATCHGRADER_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], "Usage:"),
        (["grade", "--help"], "--dry-run"),
        (["jobs", "--help"], "resume"),
        (["tokenizer", "--help"], "fetch"),
        (["--version"], "batchgrader "),
    ],
    ids=" ".join,
)
def test_help_and_version_load_no_heavy_library(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    """Help and --version are complete yet import none of polars, the SDKs or tiktoken."""
    out, modules = start(tmp_path, args)
    assert expected in out
    assert not modules & HEAVY, sorted(modules & HEAVY)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("batchgrader gr", "grade"),
        ("batchgrader jobs re", "resume"),
        ("batchgrader grade --dr", "--dry-run"),
        ("batchgrader tokenizer ", "fetch"),
    ],
)
def test_completion_loads_no_heavy_library(tmp_path: Path, words: str, expected: str) -> None:
    """A TAB of shell completion answers without importing any heavy library."""
    out, modules = start(tmp_path, [], completion(words))
    assert expected in out.split()
    assert not modules & HEAVY, sorted(modules & HEAVY)


def test_a_command_still_loads_what_it_needs(tmp_path: Path) -> None:
    """The probe sees a real command's imports (costs loads pydantic-settings for settings)."""
    home = tmp_path / "home"
    _, modules = start(tmp_path, ["costs", "--json"], {"BATCHGRADER_HOME": str(home)})
    assert "pydantic_settings" in modules
