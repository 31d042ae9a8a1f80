"""The command line as people use it: help that reads naturally, global options after
the command, the docs command, the last line of --detach, the error log, SIGTERM, and
jobs planned before chunks were numbered from 1."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader import manual, paths
from batchgrader.ledger.store import Ledger
from batchgrader.settings.loading import load_settings
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import child_env, write_table
from tests.test_cli_help import COMMANDS

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
DOCS = Path(__file__).resolve().parents[1] / "docs"
TYPE_TEXT = re.compile(r"<(bool|int|str|path|float|list\[[^\]]*\])>")


def _input(folder: Path, n: int = 4) -> tuple[Path, list[str]]:
    texts = [f"Memo {i}: glaciers move {i + 1} metres a day in spring." for i in range(n)]
    path = write_table(folder / "d.csv", pl.DataFrame({"id": list(range(n)), "response": texts}))
    return path, texts


def _two_chunks(folder: Path) -> None:
    (folder / "batchgrader.toml").write_text(
        "[chunking]\nsplit_row_limit = 2\n[run]\nmax_simultaneous_batches = 2\n"
    )


# --- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *COMMANDS, ["docs"]], ids=lambda c: " ".join(c) or "root")
def test_help_shows_no_types_on_flags(bg: Invoke, command: list[str]) -> None:
    """No help shows <bool>, <int>, <str> or <list[Path]>: flags take no value."""
    result = bg(*command, "--help")
    assert result.exit_code == 0, result.output
    assert not TYPE_TEXT.search(result.stdout), TYPE_TEXT.search(result.stdout)


def test_help_names_values_naturally(bg: Invoke) -> None:
    """Options that take a value show its name; flags show none."""
    grade = bg("grade", "--help").stdout
    assert re.search(r"--dry-run\s+Plan, count", grade)
    assert re.search(r"--model\s+-m\s+MODEL", grade)
    assert re.search(r"Usage: batchgrader grade \[OPTIONS\] \[FILE\]\.\.\.", grade)
    assert re.search(r"--rows\s+N", bg("split", "--help").stdout)


def test_root_help_points_to_the_docs_command(bg: Invoke) -> None:
    """The help footer names a docs command the installed tool has, and exit code 143."""
    text = " ".join(bg("--help").stdout.split())
    assert "batchgrader docs" in text and "docs/ in the repository" not in text
    assert "143" in text


# --- global options after the command -----------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_the_command(bg: Invoke, isolated_env: Path, where: str) -> None:
    """-q silences stderr notes whether it comes before or after the command."""
    path, _ = _input(isolated_env)
    loud = bg("count", path)
    assert "Counting only" in loud.stderr
    args = ["-q", "count", path] if where == "before" else ["count", path, "-q"]
    quiet = bg(*args)
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and "Counting only" not in quiet.stdout


def test_debug_and_verbose_after_the_command(bg: Invoke, isolated_env: Path) -> None:
    """--debug after the command shows the traceback of an error; -v, -vv are accepted."""
    result = bg("count", isolated_env / "missing.csv", "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "missing.csv" in result.stderr
    path, _ = _input(isolated_env)
    assert bg("count", path, "-vv").exit_code == 0
    assert bg("jobs", "list", "-v").exit_code == 0


def test_quiet_wins_over_verbose_wherever_it_is(bg: Invoke, isolated_env: Path) -> None:
    """-q with -v (in either place) stays quiet."""
    path, _ = _input(isolated_env)
    assert bg("-v", "count", path, "-q").stderr == ""
    assert bg("-q", "count", path, "-v").stderr == ""


# --- batchgrader docs ---------------------------------------------------------------------


def test_docs_lists_every_page(bg: Invoke) -> None:
    """batchgrader docs lists every page shipped with the package, json first among them."""
    result = bg("docs")
    assert result.exit_code == 0, result.output
    found = [p for p in DOCS.rglob("*.md") if p.name != "README.md"]
    pages = sorted(str(p.relative_to(DOCS).with_suffix("")) for p in found)
    assert sorted(t.name for t in manual.topics()) == pages
    for page in pages:
        assert page in result.stdout


@pytest.mark.parametrize("topic", ["json", "json.md", "docs/exit-codes.md", "llama"])
def test_docs_prints_a_page(bg: Invoke, topic: str) -> None:
    """batchgrader docs TOPIC prints the page as it is in docs/ (by name or a prefix)."""
    result = bg("docs", topic)
    assert result.exit_code == 0, result.output
    name = {"llama": "servers/llama-stack"}.get(topic, topic)
    name = name.removeprefix("docs/").removesuffix(".md")
    assert result.stdout == (DOCS / f"{name}.md").read_text(encoding="utf-8")


def test_docs_unknown_topic(bg: Invoke) -> None:
    """An unknown page is a usage error naming the way to list them."""
    result = bg("docs", "nothing-like-it")
    assert result.exit_code == 2
    assert "batchgrader docs lists the pages" in result.stderr


# --- grade: the last line of --detach, the error log ----------------------------------------


def test_detach_ends_with_the_command_to_resume(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--detach ends with one plain line holding the command that collects the results."""
    path, _ = _input(isolated_env)
    result = bg("grade", path, "--detach")
    assert result.exit_code == 0, result.output
    job = json.loads(bg("jobs", "list", "--json").stdout)["jobs"][0]["id"]
    last = result.stderr.splitlines()[-1]
    assert last == f"Detached. To collect the results, run: batchgrader jobs resume {job}"


def test_clean_output_has_no_error_log(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A run without errors writes no *.errors.log (and removes one a failed run left)."""
    path, _ = _input(isolated_env)
    stale = isolated_env / "output" / "d.graded.csv.errors.log"
    stale.parent.mkdir()
    stale.write_text("\n")
    result = bg("grade", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["error_log"] is None
    assert not list((isolated_env / "output").glob("*.errors.log"))


def test_error_log_holds_one_line_per_chunk_error(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """With chunk errors, the error log beside the output has one line each; JSON names it."""
    path, _ = _input(isolated_env, 4)
    _two_chunks(isolated_env)
    fake_api.max_requests_per_batch = 1  # every chunk fails validation
    result = bg("grade", path, "--json", "--continue-on-failure")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)["files"][0]
    log = Path(summary["error_log"])
    assert log == isolated_env / "output" / "d.graded.csv.errors.log"
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines == summary["errors"] and len(lines) == 2
    assert all(re.match(r"chunk \d+: batch failed validation", line) for line in lines)


# --- SIGTERM ------------------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Wait (bounded: a busy machine starts Python slowly) for ``condition`` while ``proc``
    runs; fail with its output otherwise."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no {what} (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.02)


def test_sigterm_says_what_ctrl_c_says_and_exits_143(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """SIGTERM mid-poll: exit 143 with the state-saved message and how to resume; the
    batches keep running and the same command finishes the job."""
    path, texts = _input(isolated_env)
    fake_api.polls_per_state = 10**6  # the batch never moves on its own
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgrader", "grade", str(path)],
        cwd=isolated_env,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: fake_api.request_count("retrieve") >= 2, proc, "polling")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, out + err
    assert "Interrupted. Batches already submitted keep running" in err
    assert "Run the same command again to resume (or: batchgrader jobs resume" in err
    assert "Traceback" not in err
    assert fake_api.request_count("cancel") == 0
    fake_api.polls_per_state = 1
    again = bg("grade", path)
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == 1
    graded = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert graded["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


# --- jobs planned with chunk-0000 names -----------------------------------------------------


def test_jobs_with_files_numbered_from_0_keep_working(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A job whose request and result files were named from chunk-0000 resumes, and its
    graded file is rewritten from those results without paying again."""
    path, texts = _input(isolated_env)
    _two_chunks(isolated_env)
    assert bg("grade", path, "--detach").exit_code == 0
    settings = load_settings(None, None).settings
    with Ledger.open(paths.ledger_db(settings.state_dir())) as ledger:
        (job,) = ledger.jobs(include_finished=True)
        folder = paths.jobs_dir(settings.state_dir()) / job.id
        for chunk in ledger.chunks(job.id):  # as a job planned before this release
            old = f"chunk-{chunk.idx:04d}.jsonl"
            (folder / "requests" / chunk.request_file).rename(folder / "requests" / old)
            ledger.set_chunk(job.id, chunk.idx, request_file=old)
    resumed = bg("jobs", "resume", job.id)
    assert resumed.exit_code == 0, resumed.output
    with Ledger.open(paths.ledger_db(settings.state_dir())) as ledger:
        for chunk in ledger.chunks(job.id):
            assert chunk.result_file is not None
            old = f"chunk-{chunk.idx:04d}.parquet"
            (folder / "results" / chunk.result_file).rename(folder / "results" / old)
            ledger.set_chunk(job.id, chunk.idx, result_file=old)
    output = isolated_env / "output" / "d.graded.csv"
    output.unlink()
    again = bg("grade", path)
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == 2
    graded = pl.read_csv(output)
    assert graded["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
