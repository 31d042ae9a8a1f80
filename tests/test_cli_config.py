"""``config show`` / ``config path`` and the global CLI behaviour."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batchgrader import __version__

Invoke = Callable[..., Result]
KEY = "sk-proj-SECRETSECRETSECRET9a1b2"


class TestConfigShow:
    def test_table_lists_sources(
        self, bg: Invoke, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each value is shown with the layer it came from."""
        (isolated_env / "batchgrader.toml").write_text('[request]\nmodel = "gpt-4o"\n')
        monkeypatch.setenv("BATCHGRADER_RUN__MAX_SIMULTANEOUS_BATCHES", "3")
        result = bg("config", "show")
        assert result.exit_code == 0, result.output
        lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
        assert "gpt-4o" in lines["request.model"]
        assert "project file" in lines["request.model"]
        assert "env" in lines["run.max_simultaneous_batches"]
        assert "default" in lines["chunking.split_token_limit"]

    def test_json_masks_the_key(self, bg: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
        """--json prints settings with sources; the key only masked, stderr empty."""
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        result = bg("config", "show", "--json")
        assert result.exit_code == 0, result.output
        assert KEY not in result.stdout
        assert KEY not in result.stderr
        data = {row["key"]: row for row in json.loads(result.stdout)["settings"]}
        assert data["api.key"]["value"] == "sk-...a1b2"
        assert data["api.key"]["source"] == "env"
        assert data["request.model"] == {
            "key": "request.model",
            "value": "gpt-4.1-mini",
            "source": "default",
            "source_detail": None,
            "description": "Judge model.",
        }
        assert result.stderr == ""

    def test_table_masks_the_key(self, bg: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
        """The table never shows the whole key."""
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        result = bg("config", "show")
        assert KEY not in result.output
        assert "sk-...a1b2" in result.stdout

    def test_invalid_config_exits_2_with_one_message(self, bg: Invoke, isolated_env: Path) -> None:
        """A bad project file: exit 2, Error line naming file and key, no traceback."""
        (isolated_env / "batchgrader.toml").write_text("[chunking]\nsplit_token_limit = -1\n")
        result = bg("config", "show")
        assert result.exit_code == 2
        assert "Error:" in result.stderr
        assert "chunking.split_token_limit" in result.stderr
        assert "batchgrader.toml" in result.stderr
        assert "Traceback" not in result.output

    def test_invalid_config_json_envelope(self, bg: Invoke, isolated_env: Path) -> None:
        """In --json mode the error is a JSON envelope on stdout."""
        (isolated_env / "batchgrader.toml").write_text("[chunking]\nnope = 1\n")
        result = bg("config", "show", "--json")
        assert result.exit_code == 2
        assert json.loads(result.stdout)["error"]["code"] == "config"


class TestConfigPath:
    def test_lists_files_and_dirs(self, bg: Invoke, home: Path) -> None:
        """config path names the user file, project files, state, ledger and log dirs."""
        result = bg("config", "path", "--json")
        assert result.exit_code == 0, result.output
        rows = {row["name"]: row for row in json.loads(result.stdout)["paths"]}
        assert rows["user file"]["path"] == str(home / "config.toml")
        assert rows["ledger"]["path"] == str(home / "data" / "ledger.sqlite3")
        assert {"project file", "state dir", "log dir", "jobs dir"} <= set(rows)


class TestGlobal:
    def test_version(self, bg: Invoke) -> None:
        """--version prints the installed version."""
        result = bg("--version")
        assert result.exit_code == 0
        assert result.stdout.strip() == f"batchgrader {__version__}"

    def test_unknown_command_is_usage_error(self, bg: Invoke) -> None:
        """An unknown command exits 2."""
        assert bg("frobnicate").exit_code == 2

    def test_run_log_written_with_startup_record(self, bg: Invoke, home: Path) -> None:
        """Each command writes a log file whose first line is a startup record."""
        assert bg("config", "show").exit_code == 0
        logs = list((home / "logs").glob("run-*.log"))
        assert len(logs) == 1
        assert f"batchgrader {__version__} started" in logs[0].read_text().splitlines()[0]

    def test_logs_are_rotated(self, bg: Invoke, home: Path, isolated_env: Path) -> None:
        """Only logging.max_logs run logs are kept."""
        (isolated_env / "batchgrader.toml").write_text("[logging]\nmax_logs = 2\n")
        for _ in range(4):
            assert bg("config", "path").exit_code == 0
        assert len(list((home / "logs").glob("run-*.log"))) == 2
