"""The API key never appears in output, logs, the ledger, request, result or export files.

Every command runs with the recognisable ``FAKE_KEY`` (from the environment, and again
from a settings file), at normal and debug verbosity, in human and ``--json`` mode.
Then stdout, stderr and every byte of every file under ``BATCHGRADER_HOME`` and the
working folder (log files, the SQLite ledger and its WAL, job request and result
files, dry-run request files, graded outputs, cost exports) are scanned: the key, and
any long piece of it, must be absent. Only its masked form ``sk-...wxyz`` may show.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.masking import hide
from tests.conftest import FAKE_KEY
from tests.fakes.batch_api import FakeBatchAPI

Invoke = Callable[..., Result]
MASKED = f"{FAKE_KEY[:3]}...{FAKE_KEY[-4:]}"


def key_pieces() -> list[bytes]:
    """The key and every 12-character slice of it, as bytes (UTF-8 and UTF-16)."""
    secret = FAKE_KEY[3:-4]  # the part the mask hides
    pieces = {FAKE_KEY, secret}
    pieces |= {secret[i : i + 12] for i in range(len(secret) - 11)}
    return [p.encode(codec) for p in sorted(pieces) for codec in ("utf-8", "utf-16-le")]


def leaks(data: bytes) -> list[str]:
    """The pieces of the key found in ``data``."""
    return [piece.decode("utf-8", "replace") for piece in key_pieces() if piece in data]


def scan_tree(*roots: Path) -> dict[str, list[str]]:
    """Every file under ``roots`` that holds a piece of the key."""
    found: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                hits = leaks(path.read_bytes())
                if hits:
                    found[str(path)] = hits
    return found


def files_under(root: Path) -> list[str]:
    """Names of the files under ``root`` (to show what the scan covered)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def graded_home(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> tuple[Path, list[Result]]:
    """A home after every command has run once with the key; the results of all of them."""
    df = pl.DataFrame(
        {
            "id": list(range(6)),
            "response": [f"Answer {i}: {FAKE_KEY[:3]} is a prefix, not a key." for i in range(6)],
        }
    )
    df.write_csv(isolated_env / "answers.csv")
    results: list[Result] = []

    def run(*args: object) -> Result:
        result = bg(*args)
        results.append(result)
        assert result.exit_code == 0, (args, result.output)
        return result

    for mode in ((), ("--json",)):
        run("config", "show", *mode)
        run("config", "path", *mode)
        run("count", "answers.csv", *mode)
        run("split", "answers.csv", "--rows", "2", "--dry-run", *mode)
        run("grade", "answers.csv", "--dry-run", *mode)
    run("split", "answers.csv", "--rows", "2", "--out-dir", "parts")
    run("--debug", "-vv", "grade", "answers.csv")
    run("grade", "answers.csv", "--json")  # re-attaches to the finished job
    run("grade", "answers.csv", "--force", "--output", "forced.csv", "--json")
    job_id = json.loads(results[-1].stdout)["files"][0]["job_id"]
    for mode in ((), ("--json",)):
        run("costs", *mode)
        run("costs", "--by", "job", "--csv")
        run("jobs", "list", "--all", *mode)
        run("jobs", "show", job_id, *mode)
    run("costs", "--export", "usage.jsonl")
    run("--debug", "jobs", "resume", job_id)
    run("jobs", "clean")
    assert fake_api.batches_created == 2
    return home, results


def test_key_never_printed(graded_home: tuple[Path, list[Result]]) -> None:
    """No command prints the key on stdout or stderr; config show prints it masked."""
    _, results = graded_home
    for result in results:
        assert not leaks(result.stdout_bytes), result.stdout
        assert not leaks(result.stderr_bytes), result.stderr
    assert any(MASKED in r.stdout for r in results[:2]), results[0].stdout


def test_key_never_written(graded_home: tuple[Path, list[Result]], isolated_env: Path) -> None:
    """No file under the home (logs, ledger, jobs) or the work folder holds the key."""
    home, _ = graded_home
    written = files_under(home)
    assert any(name.endswith(".log") for name in written), written
    assert any(name.startswith("data/ledger.sqlite3") for name in written), written
    outputs = files_under(isolated_env)
    assert "usage.jsonl" in outputs and "forced.csv" in outputs, outputs
    assert any(name.startswith("output/dry-run-") for name in outputs), outputs
    assert any(name.startswith("parts/") for name in outputs), outputs
    assert scan_tree(home, isolated_env) == {}


def test_ledger_keeps_only_the_masked_prefix(
    graded_home: tuple[Path, list[Result]], isolated_env: Path
) -> None:
    """Usage events and exports carry the masked key prefix, not the key."""
    events = [
        json.loads(line)
        for line in (isolated_env / "usage.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert events and {e["api_key_prefix"] for e in events} == {MASKED}


def test_key_from_a_settings_file_is_masked_too(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key in ./batchgrader.toml is masked by config show and kept out of the logs."""
    monkeypatch.delenv("OPENAI_API_KEY")
    (isolated_env / "batchgrader.toml").write_text(f'[api]\nkey = "{FAKE_KEY}"\n', encoding="utf-8")
    pl.DataFrame({"response": ["one", "two"]}).write_csv(isolated_env / "in.csv")
    shown = bg("config", "show")
    assert shown.exit_code == 0, shown.output
    assert MASKED in shown.stdout and not leaks(shown.stdout_bytes)
    graded = bg("--debug", "grade", "in.csv")
    assert graded.exit_code == 0, graded.output
    assert not leaks(graded.stdout_bytes) and not leaks(graded.stderr_bytes)
    assert scan_tree(home, isolated_env / "output") == {}


class _EchoKeyHandler(BaseHTTPRequestHandler):
    """Refuses every request with HTTP 401 and a message quoting the bearer token."""

    def _refuse(self) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {key}.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def echo_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server that quotes the API key back in its 401 answer; OPENAI_BASE_URL points at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKeyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "0")
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("before", "after"), [((), ()), ((), ("--json",)), (("--debug",), ())], ids=str
)
def test_provider_error_quoting_the_key_is_masked(
    bg: Invoke,
    echo_server: str,
    isolated_env: Path,
    home: Path,
    before: tuple[str, ...],
    after: tuple[str, ...],
) -> None:
    """A provider error that quotes the key back is shown and logged with the key masked."""
    pl.DataFrame({"response": ["one", "two"]}).write_csv(isolated_env / "in.csv")
    result = bg(*before, "grade", "in.csv", *after)
    assert result.exit_code == 1, result.output
    assert "401" in result.output
    assert not leaks(result.stdout_bytes), result.stdout
    assert not leaks(result.stderr_bytes), result.stderr
    assert scan_tree(home, isolated_env) == {}


def test_masking_hides_a_key_but_not_a_word_a_local_server_takes_as_one() -> None:
    assert hide(f"refused {FAKE_KEY}.", FAKE_KEY) == f"refused {MASKED}."
    # OPENAI_API_KEY=none (a local server wants no key): "none" is not a secret, and
    # masking it would garble every word it is part of.
    assert hide("none of the rows: nonexistent", "none") == "none of the rows: nonexistent"


def test_a_short_key_leaves_the_messages_readable(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``OPENAI_API_KEY=x`` the warning about an existing output still says "exists"."""
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    pl.DataFrame({"response": ["one", "two"]}).write_csv(isolated_env / "in.csv")
    (isolated_env / "output").mkdir()
    (isolated_env / "output" / "in.graded.csv").write_text("kept\n")
    result = bg("grade", "in.csv", "--mode", "direct", "--yes")
    assert result.exit_code == 0, result.output
    assert "exists" in " ".join(result.output.split()), result.output
    assert "*" not in result.output, result.output
