"""tiktoken's encoding files offline: the cache folder, ``tokenizer fetch|status|path``.

``fetch`` is tested without network: a local HTTP server serves the encoding files (from
the folder the suite uses) at the paths tiktoken requests, and the subprocess running
batchgrader sends tiktoken's downloads there by wrapping ``tiktoken.load.read_file``.
tiktoken's own code still names the cached file and checks its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import Result

from batchgrader import paths
from batchgrader.errors import TokenizerUnavailable
from batchgrader.prompting import catalogue, tokenizer_cache, tokens
from batchgrader.prompting.tokenizer_cache import ENCODINGS
from tests.helpers import break_tokenizer, write_table

Bg = Callable[..., Result]
REPO = Path(__file__).resolve().parents[1]
TIKTOKEN_HOST = "https://openaipublic.blob.core.windows.net"

#: ``batchgrader ARGS...`` with tiktoken's downloads sent to a mirror (argv[1]).
VIA_MIRROR = f"""
import sys
import tiktoken.load as load
real = load.read_file
mirror = sys.argv.pop(1)
def read_file(blobpath):
    return real(blobpath.replace({TIKTOKEN_HOST!r}, mirror))
load.read_file = read_file
sys.argv[0] = "batchgrader"
from batchgrader.cli import main
main()
"""
#: ``batchgrader ARGS...`` as the console script runs it.
PLAIN = "import sys; sys.argv[0] = 'batchgrader'; from batchgrader.cli import main; main()"


class Mirror:
    """A local HTTP server with tiktoken's encoding files at tiktoken's URL paths."""

    def __init__(self, source: Path) -> None:
        self.files = {urlsplit(e.url).path: source / e.file_name for e in ENCODINGS.values()}
        self.requests: list[str] = []
        self.corrupt = False
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                file = mirror.files.get(self.path)
                if file is None:
                    self.send_error(404)
                    return
                body = file.read_bytes()
                if mirror.corrupt:
                    body = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    """tiktoken's files served over real HTTP on 127.0.0.1, from the suite's cache."""
    with Mirror(Path(os.environ["TIKTOKEN_CACHE_DIR"])) as served:
        yield served


@pytest.fixture
def user_env(home: Path) -> dict[str, str]:
    """A subprocess environment with no tiktoken folder chosen and no reachable proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"} and "proxy" not in k.lower()
    }
    return env | {"BATCHGRADER_HOME": str(home), "COLUMNS": "1000", "NO_PROXY": "127.0.0.1"}


def run(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run batchgrader in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )


def offline(env: dict[str, str]) -> dict[str, str]:
    """``env`` with every HTTP(S) connection sent to a closed port."""
    return env | {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


class TestCacheFolder:
    """Which folder tiktoken reads and batchgrader fills."""

    def test_batchgrader_home_holds_the_default_folder(
        self, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no tiktoken variable set, the folder is under BATCHGRADER_HOME."""
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        assert paths.tokenizer_cache_dir() == home / "cache" / "tiktoken"
        assert tokenizer_cache.cache_source() == "batchgrader"

    def test_platformdirs_user_cache_without_batchgrader_home(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without BATCHGRADER_HOME the folder is the per-user cache folder, not the temp dir."""
        import platformdirs

        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        monkeypatch.delenv("BATCHGRADER_HOME")
        expected = platformdirs.user_cache_path("batchgrader") / "tiktoken"
        assert paths.tokenizer_cache_dir() == expected

    @pytest.mark.parametrize("name", ["TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"])
    def test_the_users_tiktoken_variable_wins(
        self, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder the user gave tiktoken is the one batchgrader uses and reports."""
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        monkeypatch.setenv(name, str(tmp_path / "mine"))
        assert paths.tokenizer_cache_dir() == tmp_path / "mine"
        assert tokenizer_cache.cache_source() == name
        with tokenizer_cache.tiktoken_folder() as folder:
            assert folder == tmp_path / "mine"
            assert os.environ.get("TIKTOKEN_CACHE_DIR") == (
                str(folder) if name == "TIKTOKEN_CACHE_DIR" else None
            )

    def test_an_empty_variable_counts_as_unset(
        self, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """TIKTOKEN_CACHE_DIR='' does not send the files to the working folder."""
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
        assert paths.tokenizer_cache_dir() == home / "cache" / "tiktoken"

    def test_tiktoken_is_pointed_at_batchgrader_folder_while_it_loads(
        self, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While tiktoken loads, TIKTOKEN_CACHE_DIR names batchgrader's folder; then not."""
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        with tokenizer_cache.tiktoken_folder() as folder:
            assert folder == home / "cache" / "tiktoken"
            assert os.environ["TIKTOKEN_CACHE_DIR"] == str(folder)
        assert "TIKTOKEN_CACHE_DIR" not in os.environ
        assert tokenizer_cache.cache_source() == "batchgrader"


class TestEncodingFiles:
    """batchgrader's table of encoding files agrees with tiktoken and the catalogue."""

    @pytest.mark.parametrize("name", list(ENCODINGS))
    def test_url_and_hash_are_tiktokens(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The URL and SHA-256 are the ones the installed tiktoken fetches and checks."""
        from tiktoken_ext import openai_public

        seen: list[tuple[str, str | None]] = []

        def load(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
            seen.append((url, expected_hash))
            return {}

        monkeypatch.setattr(openai_public, "load_tiktoken_bpe", load)
        openai_public.ENCODING_CONSTRUCTORS[name]()
        assert seen == [(ENCODINGS[name].url, ENCODINGS[name].sha256)]

    def test_every_catalogue_encoding_can_be_fetched(self) -> None:
        """Every encoding a model of the catalogue uses is one fetch knows."""
        used = {catalogue.lookup(m).encoding for m in catalogue.models()} - {None, ""}
        assert used <= set(ENCODINGS)
        assert tokens.DEFAULT_ENCODING in ENCODINGS

    def test_the_suites_folder_holds_them_under_tiktokens_names(self) -> None:
        """The folder the suite uses holds every file, named as tiktoken names them."""
        folder = Path(os.environ["TIKTOKEN_CACHE_DIR"])
        for e in ENCODINGS.values():
            assert e.file_name == hashlib.sha1(e.url.encode()).hexdigest()
        assert tokenizer_cache.holds_all(folder)

    def test_a_damaged_file_is_not_present(self, tmp_path: Path) -> None:
        """A file with the right name but the wrong content counts as missing."""
        folder = tmp_path / "cache"
        folder.mkdir()
        (folder / ENCODINGS["o200k_base"].file_name).write_bytes(b"not an encoding")
        rows = {r.name: r.present for r in tokenizer_cache.folder_status(folder)}
        assert rows == {"o200k_base": False, "cl100k_base": False}


class TestFetch:
    """``batchgrader tokenizer fetch`` over real HTTP, in a fresh process."""

    def test_fetch_fills_the_folder_later_commands_use_offline(
        self, mirror: Mirror, user_env: dict[str, str], home: Path, isolated_env: Path
    ) -> None:
        """fetch downloads both encodings once; count then runs with no network at all."""
        done = run(VIA_MIRROR, mirror.url, "tokenizer", "fetch", "--json", env=user_env)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        folder = home / "cache" / "tiktoken"
        assert report["folder"] == str(folder) and report["source"] == "batchgrader"
        assert [(e["name"], e["present"], e["action"]) for e in report["encodings"]] == [
            ("o200k_base", True, "downloaded"),
            ("cl100k_base", True, "downloaded"),
        ]
        assert sorted(mirror.requests) == sorted(urlsplit(e.url).path for e in ENCODINGS.values())
        assert tokenizer_cache.holds_all(folder)

        again = run(VIA_MIRROR, mirror.url, "tokenizer", "fetch", env=user_env)
        assert again.returncode == 0, again.stderr
        assert "already present" in again.stdout and len(mirror.requests) == 2

        write_table(isolated_env / "answers.csv", [{"response": "naïve 東京 🙂"}] * 3)
        count = run(PLAIN, "count", "answers.csv", "--json", env=offline(user_env))
        assert count.returncode == 0, count.stderr
        assert json.loads(count.stdout)["files"][0]["rows"] == 3
        path = run(PLAIN, "tokenizer", "path", env=offline(user_env))
        assert path.stdout.strip() == str(folder)

    def test_offline_fetch_is_one_clear_error(self, user_env: dict[str, str], home: Path) -> None:
        """Without network, fetch exits 2 naming the URL and the folder, with no traceback."""
        done = run(PLAIN, "tokenizer", "fetch", env=offline(user_env))
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        first = done.stderr.splitlines()[0]
        assert first.startswith("Error: Could not download the tokenizer encoding 'o200k_base'")
        assert ENCODINGS["o200k_base"].url in first
        assert str(home / "cache" / "tiktoken") in first
        assert "Hint:" in done.stderr and "TIKTOKEN_CACHE_DIR" in done.stderr

    def test_a_corrupt_download_is_refused(
        self, mirror: Mirror, user_env: dict[str, str], home: Path
    ) -> None:
        """A download whose SHA-256 is wrong is not kept, and fetch exits 2."""
        mirror.corrupt = True
        done = run(VIA_MIRROR, mirror.url, "tokenizer", "fetch", env=user_env)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "Hash mismatch" in done.stderr
        assert not tokenizer_cache.holds_all(home / "cache" / "tiktoken")

    def test_unknown_encoding_is_a_usage_error(self, bg: Bg) -> None:
        """fetch -e names only the encodings batchgrader uses."""
        result = bg("tokenizer", "fetch", "-e", "p50k_base")
        assert result.exit_code == 2
        assert "Unknown encoding 'p50k_base'" in result.stderr


class TestReports:
    """Where the encodings are, as status and config path report it."""

    def test_status_of_the_suites_folder(self, bg: Bg) -> None:
        """status --json lists the folder, its source and both encodings present."""
        result = bg("tokenizer", "status", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["folder"] == os.environ["TIKTOKEN_CACHE_DIR"]
        assert report["source"] == "TIKTOKEN_CACHE_DIR"
        assert all(e["present"] for e in report["encodings"])

    def test_status_of_an_empty_folder_says_what_to_run(
        self, bg: Bg, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """status on batchgrader's empty folder says fetch downloads what is missing."""
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        result = bg("tokenizer", "status")
        assert result.exit_code == 0, result.output
        assert "batchgrader's cache folder" in result.stdout
        assert "batchgrader tokenizer fetch" in result.stdout

    def test_config_path_lists_the_tokenizer_cache(
        self, bg: Bg, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """config path names the cache folder and says whether each encoding is there."""
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        rows = {r["name"]: r for r in json.loads(bg("config", "path", "--json").stdout)["paths"]}
        assert rows["tokenizer cache"]["path"] == str(home / "cache" / "tiktoken")
        for name, e in ENCODINGS.items():
            assert rows[f"encoding {name}"] == {
                "name": f"encoding {name}",
                "path": str(home / "cache" / "tiktoken" / e.file_name),
                "exists": False,
            }

    def test_config_path_names_the_users_variable(self, bg: Bg) -> None:
        """A folder chosen with TIKTOKEN_CACHE_DIR is labelled so, its encodings present."""
        rows = {r["name"]: r for r in json.loads(bg("config", "path", "--json").stdout)["paths"]}
        assert rows["tokenizer cache (TIKTOKEN_CACHE_DIR)"]["exists"]
        assert all(rows[f"encoding {name}"]["exists"] for name in ENCODINGS)


class TestMissingEncoding:
    """The error of a command that needs an encoding that is not there."""

    @pytest.fixture
    def no_tokenizer(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        """tiktoken cannot load or download any encoding during the test."""
        empty = break_tokenizer(monkeypatch, tmp_path)
        yield empty
        tokens._encoding.cache_clear()

    def test_the_error_names_the_fetch_command(self, no_tokenizer: Path) -> None:
        """The hint says which command downloads the encodings."""
        with pytest.raises(TokenizerUnavailable) as info:
            tokens.Counter.for_model("gpt-4.1-mini")
        assert info.value.hint is not None
        assert "batchgrader tokenizer fetch" in info.value.hint


def test_the_suite_stops_at_start_without_the_encodings(tmp_path: Path) -> None:
    """With no encodings where the suite looks, pytest stops with one message saying why."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = os.environ | {"TIKTOKEN_CACHE_DIR": str(empty)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "0",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_startup.py",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "batchgrader tokenizer fetch" in done.stderr
    assert str(empty) in done.stderr
    assert "passed" not in done.stdout and "failed" not in done.stdout
