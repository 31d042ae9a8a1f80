"""Checked before paying, clear errors fast, and the small things (issue 13, items 10-12).

Every refusal here is one ``Error:`` line, exit 2, no traceback, and not a single
request to the fake Batch API. Cases that need a full or read-only disk mount a small
tmpfs, which needs root (they are skipped elsewhere).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
MODEL = "gpt-4.1-mini"


def _texts(n: int) -> list[str]:
    return [f"Answer {i}: owls turn their heads {i + 200} degrees." for i in range(n)]


def _csv(folder: Path, name: str = "d.csv", n: int = 3) -> Path:
    frame = pl.DataFrame({"id": list(range(n)), "response": _texts(n)})
    return write_table(folder / name, frame)


def _refused(result: Result, fake: FakeBatchAPI, *needles: str) -> None:
    """One Error line naming the problem, exit 2, no traceback, no request at all."""
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1, result.output
    assert fake.calls == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of this test's own (mounting needs root: skipped otherwise)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(disk: Path, leave: int = 0) -> None:
    """Use up the disk's free space (all but ``leave`` bytes)."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(b"x" * max(0, stat.f_bavail * stat.f_frsize - leave))


def _read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


# --- check before paying (item 10) ------------------------------------------------------


def _output_is_a_file(work: Path) -> list[str]:
    (work / "output").write_text("not a folder")
    return ["output is a file, not a folder"]


def _output_dangles(work: Path) -> list[str]:
    (work / "output").symlink_to(work / "gone")
    return ["is a link to nothing"]


SETTINGS = {
    "timeout.toml": "[api]\ntimeout_seconds = inf\n",
    "negative.toml": f'[run.max_enqueued_tokens]\n"{MODEL}" = -5\n',
}


def _poll_forever(work: Path) -> list[str]:
    os.environ["BATCHGRADER_RUN__POLL_INTERVAL_SECONDS"] = "inf"  # restored by the fixture
    return ["run.poll_interval_seconds", "BATCHGRADER_RUN__POLL_INTERVAL_SECONDS", "finite"]


#: case: (set-up returning what the error must say, options before ``grade``, after it)
PREFLIGHT: dict[str, tuple[Callable[[Path], list[str]], list[str], list[str]]] = {
    "output folder is a file": (_output_is_a_file, [], []),
    "output folder is a dangling link": (_output_dangles, [], []),
    "-o with an unknown extension": (
        lambda w: ["cannot write '.xlsx' files"],
        [],
        ["-o", "results.xlsx"],
    ),
    "nested columns to CSV": (
        lambda w: ["nested columns (meta)", "CSV file cannot hold"],
        [],
        ["--output-format", "csv"],
    ),
    "poll_interval_seconds = inf": (
        _poll_forever,
        [],
        [],
    ),
    "timeout_seconds = inf": (
        lambda w: ["api.timeout_seconds", "finite number"],
        ["--config", "timeout.toml"],
        [],
    ),
    "negative max_enqueued_tokens": (
        lambda w: ["run.max_enqueued_tokens", "greater than 0"],
        ["--config", "negative.toml"],
        [],
    ),
}


@pytest.mark.parametrize("case", list(PREFLIGHT))
def test_refused_before_anything_is_paid(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, case: str
) -> None:
    """Each problem the run would only hit after paying is found first: exit 2, nothing
    sent, no job left behind."""
    setup, before, after = PREFLIGHT[case]
    for name, text in SETTINGS.items():
        (isolated_env / name).write_text(text)
    src = isolated_env / "d.jsonl"
    rows = [{"response": t, "meta": {"n": i}} for i, t in enumerate(_texts(2))]
    src.write_text("".join(json.dumps(row) + "\n" for row in rows))
    needles = setup(isolated_env)
    _refused(bg(*before, "grade", src, *after), fake_api, *needles)
    ledger = isolated_env.parent / "bg-home" / "data" / "ledger.sqlite3"
    if ledger.exists():
        with sqlite3.connect(ledger) as db:
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_a_later_files_refusal_leaves_no_job_of_the_earlier(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """Several files, the last refused: the jobs made for the ones before are removed too
    (nothing was sent for any of them)."""
    nested = isolated_env / "n.jsonl"
    nested.write_text(json.dumps({"response": "Owls.", "meta": {"n": 1}}) + "\n")
    result = bg("grade", _csv(isolated_env), nested, "--output-format", "csv")
    _refused(result, fake_api, "nested columns (meta)")
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert list((home / "data" / "jobs").glob("*")) == []


class TestOnASmallDisk:
    """A full or read-only disk under the output or the state folder."""

    def test_output_folder_without_room(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, small_disk: Path
    ) -> None:
        """An output folder without room for about twice the input is refused."""
        src = _csv(isolated_env, n=40000)  # ~2.3 MB: the 4 MB disk cannot hold 2x
        _refused(bg("grade", src, "-o", small_disk / "d.graded.csv"), fake_api, "bytes are free")

    def test_read_only_output_folder(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, small_disk: Path
    ) -> None:
        """An output folder on a read-only disk is refused (even for root)."""
        _read_only(small_disk)
        result = bg("grade", _csv(isolated_env), "-o", small_disk / "d.graded.csv")
        _refused(result, fake_api, "Cannot write into", "permission denied")

    def test_full_state_folder(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        small_disk: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A full disk under the state folder: before its ledger exists, or with room for
        the ledger but not the job's request files, one line, exit 2, nothing sent, no
        half-made job; filling up after the batch was paid, one line too, and with room
        again the same command finishes without paying again."""
        monkeypatch.setenv("BATCHGRADER_STATE_DIR", str(small_disk / "state"))
        src = _csv(isolated_env, n=3000)  # ~2 MB of request lines, as much of results
        _fill(small_disk)
        _refused(bg("grade", src), fake_api, "No room left")
        (small_disk / "filler").unlink()
        assert bg("jobs", "list").exit_code == 0  # the ledger exists now
        _fill(small_disk, leave=500_000)  # room for the ledger, not for the request files
        _refused(bg("grade", src), fake_api, "No room left on the disk")
        assert list((small_disk / "state" / "jobs").glob("*")) == []  # no half-made job
        (small_disk / "filler").unlink()
        paid = bg("grade", src)  # the requests fit; the results do not
        assert paid.exit_code == 2, paid.output
        assert "No room left" in paid.output and "never paid twice" in paid.output
        assert "Traceback" not in paid.output
        assert fake_api.batches_created == 1
        subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
        result = bg("grade", src)
        assert result.exit_code == 0, result.output
        assert fake_api.batches_created == 1
        graded = pl.read_csv(isolated_env / "output" / "d.graded.csv")
        assert graded["llm_score"].to_list() == [judge_score(USER + t) for t in _texts(3000)]

    def test_read_only_ledger(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        small_disk: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A ledger on a read-only disk: one line, exit 2, nothing sent."""
        monkeypatch.setenv("BATCHGRADER_STATE_DIR", str(small_disk / "state"))
        assert bg("jobs", "list").exit_code == 0
        _read_only(small_disk)
        _refused(bg("grade", _csv(isolated_env)), fake_api, "read-only")


# --- clear errors, fast (item 11) --------------------------------------------------------


def test_api_key_with_a_trailing_newline_is_stripped(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key pasted with its trailing newline works: the newline is not sent."""
    key = os.environ["OPENAI_API_KEY"]
    monkeypatch.setenv("OPENAI_API_KEY", key + "\n")
    result = bg("grade", _csv(isolated_env))
    assert result.exit_code == 0, result.output
    assert {c.headers["authorization"] for c in fake_api.calls} == {f"Bearer {key}"}


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("OPENAI_API_KEY", "sk-test-é-abc", "non-ASCII"),
        ("OPENAI_API_KEY", "sk-test abc", "a space"),
        ("OPENAI_BASE_URL", "localhost:8000/v1", "is not an http(s) URL"),
        ("OPENAI_BASE_URL", "ftp://example.com/v1", "is not an http(s) URL"),
    ],
)
def test_bad_key_or_base_url_refused_at_once(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    needle: str,
) -> None:
    """A key with a space or a non-ASCII character, or a base URL that is not http(s), is
    refused when the settings load, naming the variable (and never echoing the key)."""
    monkeypatch.setenv(variable, value)
    result = bg("grade", _csv(isolated_env))
    _refused(result, fake_api, variable, needle)
    if variable == "OPENAI_API_KEY":
        assert value not in result.output


def test_configured_enqueued_cap_beats_a_learned_one_and_forget_limits(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A limit learned from a refusal caps later runs until a higher configured
    ``max_enqueued_tokens`` wins over it, or ``jobs forget-limits`` forgets it."""
    src = _csv(isolated_env, n=6)
    fake_api.enqueued_token_limit = {MODEL: 200}  # each row fits, the whole file does not
    first = bg("grade", src)
    assert first.exit_code == 1, first.output  # the chunk can never run under 60
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        assert db.execute("SELECT enqueued_tokens FROM learned_limits").fetchall() == [(200,)]
    fake_api.enqueued_token_limit = {}  # the account's limit was raised since
    capped = bg("grade", src, "--force", "--overwrite")
    assert capped.exit_code == 0, capped.output
    created = fake_api.batches_created
    assert created - 1 == 3  # planned under the learned 200 tokens: batches of two rows
    (isolated_env / "batchgrader.toml").write_text(
        f'[run.max_enqueued_tokens]\n"{MODEL}" = 10000000\n'
    )
    raised = bg("grade", src, "--force", "--overwrite")
    assert raised.exit_code == 0, raised.output
    assert fake_api.batches_created == created + 1
    (isolated_env / "batchgrader.toml").unlink()
    forgot = bg("jobs", "forget-limits", "--json")
    assert forgot.exit_code == 0, forgot.output
    assert json.loads(forgot.stdout) == {"forgotten": {MODEL: 200}}
    again = bg("grade", src, "--force", "--overwrite")
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == created + 2


def _ledger_not_a_database(home: Path, work: Path) -> list[str]:
    (home / "data").mkdir(parents=True)
    (home / "data" / "ledger.sqlite3").write_bytes(b"these are not the pages of a database\n" * 50)
    return ["is not a batchgrader database"]


def _ledger_is_a_folder(home: Path, work: Path) -> list[str]:
    (home / "data" / "ledger.sqlite3").mkdir(parents=True)
    return ["is a folder, not a database file"]


def _state_dir_is_a_file(home: Path, work: Path) -> list[str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "data").write_text("a file where the state folder goes")
    return [f"The state folder {home / 'data'} is a file, not a folder"]


def _csv_with_cr_line_ends(home: Path, work: Path) -> list[str]:
    (work / "d.csv").write_bytes(b"id,response\r1,hello there\r2,goodbye now\r")
    return ["d.csv: its lines end with a carriage return alone", "tr '\\r' '\\n'"]


def _bad_polars_variable(home: Path, work: Path) -> list[str]:
    os.environ["POLARS_CSV_CHUNK_SIZE"] = "4MB"  # restored by the test's monkeypatch
    return ["POLARS_CSV_CHUNK_SIZE is '4MB'", "whole number"]


ENVIRONMENT: dict[str, Callable[[Path, Path], list[str]]] = {
    "ledger that is not a database": _ledger_not_a_database,
    "ledger path that is a folder": _ledger_is_a_folder,
    "state folder that is a file": _state_dir_is_a_file,
    "CSV with CR-only line ends": _csv_with_cr_line_ends,
    "malformed POLARS_CSV_CHUNK_SIZE": _bad_polars_variable,
}


@pytest.mark.parametrize("case", list(ENVIRONMENT))
def test_environment_problems_are_one_line(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """A broken ledger or state folder, a CR-only CSV, a malformed polars variable: one
    line naming the problem, exit 2, never a traceback, nothing sent."""
    monkeypatch.setenv("POLARS_CSV_CHUNK_SIZE", os.environ.get("POLARS_CSV_CHUNK_SIZE", "4194304"))
    _csv(isolated_env)
    needles = ENVIRONMENT[case](home, isolated_env)
    _refused(bg("grade", isolated_env / "d.csv"), fake_api, *needles)


# --- small things (item 12) ----------------------------------------------------------


def test_huge_max_tokens_names_the_model_limit(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """``--max-tokens`` beyond what the model can write says so, with no negative room."""
    result = bg("grade", _csv(isolated_env), "--max-tokens", "999999")
    _refused(result, fake_api, "max_tokens_per_response (999,999) is more than", "32,768")
    assert "-9" not in result.output


def test_oversized_system_prompt_is_the_prompts_fault(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A system message over the context window is named as such, not blamed on row 1."""
    prompt = isolated_env / "p.toml"
    prompt.write_text(
        'system = """' + "Judge with care. " * 350_000 + '"""\nuser = "{text}"\n', encoding="utf-8"
    )
    result = bg("grade", _csv(isolated_env), "--prompt", prompt)
    _refused(result, fake_api, "The prompt's system message alone needs", "Shorten the system")
    assert "Row 1" not in result.output


def test_jsonl_keeps_each_values_type(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A JSONL column mixing numbers and text comes back as it went in (numbers as
    numbers, text as text, a number's spelling kept), with the result fields added."""
    texts = _texts(4)
    values: list[object] = [7, "7", 3.50, None]
    lines = [
        f'{{"response": {json.dumps(t)}, "v": {"3.50" if v == 3.5 else json.dumps(v)}}}'
        for t, v in zip(texts, values, strict=True)
    ]
    src = isolated_env / "m.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    out = (isolated_env / "output" / "m.graded.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["v"] for line in out] == values
    assert '"v": 3.50,' in out[2]
    scores = [json.loads(line)["llm_score"] for line in out]
    assert scores == [judge_score(USER + t) for t in texts]


def test_copy_of_a_graded_file_gets_its_own_graded_file(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A byte-identical copy (here, of a file in another folder) re-attaches to the job
    that graded it, says so, writes its own graded file where asked, and sends nothing,
    ``--detach`` included; ``--force`` grades it again."""
    first = _csv(isolated_env / "a", "d.csv")
    assert bg("grade", first).exit_code == 0
    copy = isolated_env / "b" / "d.csv"
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    result = bg("grade", copy, "-o", isolated_env / "copy.graded.csv")
    assert result.exit_code == 0, result.output
    message = " ".join(result.stderr.split())
    assert "These rows were graded before by job" in message
    assert f"from {first.resolve()} on " in message
    assert pl.read_csv(isolated_env / "copy.graded.csv")["llm_score"].to_list() == [
        judge_score(USER + t) for t in _texts(3)
    ]
    assert bg("jobs", "clean").exit_code == 0  # the job's stored results are gone now
    again = bg("grade", copy, "-o", isolated_env / "again.graded.csv")
    assert again.exit_code == 0, again.output
    original = (isolated_env / "output" / "d.graded.csv").read_bytes()
    assert (isolated_env / "again.graded.csv").read_bytes() == original
    detached = bg("grade", copy, "--detach", "--json")
    assert detached.exit_code == 0, detached.output
    assert json.loads(detached.stdout)["files"][0]["input"] == str(copy.resolve())
    assert fake_api.batches_created == 1
    forced = bg("grade", copy, "--force", "--detach")
    assert forced.exit_code == 0, forced.output
    assert fake_api.batches_created == 2
