"""Test isolation: every test gets its own home, working dir and a clean environment."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer.main
import typer.testing
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner, Result

from batchgrader import paths
from batchgrader.cli import app
from batchgrader.prompting import tokenizer_cache
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.batch_api import FakeBatchAPI

# Property tests run on loaded CI machines: no per-example deadline (a slow example is not a
# failure), and the same number of examples everywhere.
settings.register_profile(
    "batchgrader", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("batchgrader")

FAKE_KEY = "sk-test-FAKEKEY0000000000000000000000wxyz"
FAKE_ANTHROPIC_KEY = "sk-ant-test-FAKEKEY00000000000000000000qrst"

SHARED_TIKTOKEN_CACHE = Path(__file__).resolve().parents[2] / "shared" / "tiktoken-cache"

#: The folder holding tiktoken's encodings that every test uses (set at configure).
TIKTOKEN_CACHE: Path | None = None


def tiktoken_cache_candidates() -> list[Path]:
    """Where the suite looks for tiktoken's encodings, in order.

    A ``TIKTOKEN_CACHE_DIR`` the developer (or ``.ci/run``) set is the only place looked
    at; otherwise batchgrader's own cache folder (what ``batchgrader tokenizer fetch``
    fills, under the developer's ``BATCHGRADER_HOME`` if set), then the shared folder
    beside the checkout.
    """
    if paths.tokenizer_cache_env() is not None:
        return [paths.tokenizer_cache_dir()]
    return [paths.tokenizer_cache_dir(), SHARED_TIKTOKEN_CACHE]


def use_bytecode_cache(root: Path) -> None:
    """Let this process, the xdist workers and every child cache compiled bytecode.

    Many tests start ``python -m batchgrader`` (or pytest) in a child process. With
    ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` in the venv, each child compiled
    typer, polars, openai... from source again (2-3 s a child). Bytecode goes to one folder
    under ``.pytest_cache`` (``PYTHONPYCACHEPREFIX``, unless the developer set one), so no
    ``__pycache__`` appears in the tree and the next run starts warm. Set here, in the
    controller, before xdist starts its workers: they and their children inherit it.
    """
    prefix = os.environ.get("PYTHONPYCACHEPREFIX") or str(root / ".pytest_cache" / "pycache")
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    """Cache bytecode for the children; stop at start when tiktoken's encodings are missing."""
    use_bytecode_cache(config.rootpath)
    global TIKTOKEN_CACHE
    candidates = tiktoken_cache_candidates()
    TIKTOKEN_CACHE = next((c for c in candidates if tokenizer_cache.holds_all(c)), None)
    if TIKTOKEN_CACHE is None:
        names = " and ".join(tokenizer_cache.ENCODINGS)
        where = " nor in ".join(str(c) for c in candidates)
        raise pytest.UsageError(
            f"The tests count tokens offline with tiktoken's {names} encodings, which are "
            f"not in {where}. Run 'uv run batchgrader tokenizer fetch' once with network "
            "access (or set TIKTOKEN_CACHE_DIR to a folder holding them; docs/offline.md)."
        )


@pytest.fixture(scope="session")
def no_ca_certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty folder of CA certificates (see ``isolated_env``)."""
    return tmp_path_factory.mktemp("no-ca-certificates")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_ca_certificates: Path) -> Path:
    """Point every per-user location at tmp, drop provider env vars, run in a temp cwd.

    The SDKs' HTTP clients trust the CA certificates of an empty folder (``SSL_CERT_DIR``,
    read lazily) instead of loading the system's bundle: 30-45 ms for each client, and
    every test talks plain HTTP to a fake on 127.0.0.1 (no test may reach a real host).
    """
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_", "BATCHGRADER_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(no_ca_certificates))
    home = tmp_path / "bg-home"
    monkeypatch.setenv("BATCHGRADER_HOME", str(home))
    assert TIKTOKEN_CACHE is not None  # pytest_configure stopped the session otherwise
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def home(isolated_env: Path) -> Path:
    """The BATCHGRADER_HOME of this test."""
    return isolated_env.parent / "bg-home"


@pytest.fixture(scope="session")
def _click_command_built_once() -> Iterator[None]:
    """typer's ``CliRunner.invoke`` builds the app's Click command anew at every call
    (~30 ms of signature reading, more than many a test's own work); the command is the
    same each time, so build it once per worker. ``batchgrader`` builds it once per
    process too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", functools.cache(typer.main.get_command))
        yield


@pytest.fixture
def bg(_click_command_built_once: None) -> Callable[..., Result]:
    """Invoke the batchgrader app in-process: ``bg("count", path, "--json")``."""
    runner = CliRunner()

    def invoke(*args: object, input: str | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeBatchAPI]:
    with FakeBatchAPI() as fake:
        yield fake


@pytest.fixture
def fake_api(_fake_server: FakeBatchAPI, monkeypatch: pytest.MonkeyPatch) -> FakeBatchAPI:
    """The fake Batch API (reset), with batchgrader pointed at it and fast polling."""
    _fake_server.reset()
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", _fake_server.base_url)
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_INTERVAL_SECONDS", "0.001")
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_MAX_INTERVAL_SECONDS", "0.005")
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "3")
    monkeypatch.setenv("BATCHGRADER_API__RETRY_MAX_WAIT_SECONDS", "0.01")
    return _fake_server


@pytest.fixture(scope="session")
def _fake_anthropic_server() -> Iterator[FakeAnthropicAPI]:
    with FakeAnthropicAPI() as fake:
        yield fake


@pytest.fixture
def fake_anthropic(
    _fake_anthropic_server: FakeAnthropicAPI, monkeypatch: pytest.MonkeyPatch
) -> FakeAnthropicAPI:
    """The fake Anthropic API (reset), with batchgrader pointed at it and fast polling.

    count_tokens may be called as fast as the fake answers (no rate spacing).
    """
    _fake_anthropic_server.reset()
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", _fake_anthropic_server.base_url)
    monkeypatch.setenv("BATCHGRADER_ANTHROPIC__COUNT_TOKENS_RPM", "1000000")
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_INTERVAL_SECONDS", "0.001")
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_MAX_INTERVAL_SECONDS", "0.005")
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "3")
    monkeypatch.setenv("BATCHGRADER_API__RETRY_MAX_WAIT_SECONDS", "0.01")
    return _fake_anthropic_server
