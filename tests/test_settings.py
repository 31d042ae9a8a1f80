"""Settings: precedence, key-by-key merge, validation errors naming their source."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from batchgrader.errors import ConfigError
from batchgrader.settings.loading import load_settings


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class TestDefaults:
    def test_defaults_match_the_documented_values(self) -> None:
        """With no file, env or flag, every default from the issue is in force."""
        s = load_settings().settings
        assert s.request.model == "gpt-4.1-mini"
        assert s.request.endpoint is None  # chat, or responses for responses-only models
        assert s.request.response_field == "response"
        assert s.paths.input_dir == Path("input")
        assert s.paths.output_dir == Path("output")
        assert s.chunking.split_token_limit == 500_000
        assert s.chunking.split_row_limit is None
        assert s.chunking.force_chunk_count == 0
        assert s.run.max_simultaneous_batches == 2
        assert s.run.halt_on_chunk_failure is True
        assert s.run.max_enqueued_tokens == {}
        assert s.api.key is None


class TestPrecedence:
    def test_each_level_overrides_the_one_below(
        self, home: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """flag > env > project file > user file > default, for the same key."""
        _write(home / "config.toml", '[request]\nmodel = "from-user"\n')
        assert load_settings().settings.request.model == "from-user"
        _write(isolated_env / "batchgrader.toml", '[request]\nmodel = "from-project"\n')
        assert load_settings().settings.request.model == "from-project"
        monkeypatch.setenv("BATCHGRADER_REQUEST__MODEL", "from-env")
        assert load_settings().settings.request.model == "from-env"
        loaded = load_settings({"request.model": "from-flag"})
        assert loaded.settings.request.model == "from-flag"
        assert loaded.provenance["request.model"].kind == "flag"

    def test_pyproject_tool_table_is_a_project_file(self, isolated_env: Path) -> None:
        """[tool.batchgrader] in ./pyproject.toml is read when batchgrader.toml is absent."""
        _write(
            isolated_env / "pyproject.toml",
            '[project]\nname = "x"\n[tool.batchgrader.request]\nmodel = "gpt-4o"\n',
        )
        loaded = load_settings()
        assert loaded.settings.request.model == "gpt-4o"
        assert loaded.provenance["request.model"].kind == "project file"

    def test_config_option_names_another_file(self, tmp_path: Path, isolated_env: Path) -> None:
        """--config FILE is read instead of ./batchgrader.toml."""
        _write(isolated_env / "batchgrader.toml", '[request]\nmodel = "ignored"\n')
        other = _write(tmp_path / "other.toml", '[request]\nmodel = "gpt-4o"\n')
        assert load_settings(config_file=other).settings.request.model == "gpt-4o"

    def test_missing_config_file_is_an_error(self, tmp_path: Path) -> None:
        """A --config path that does not exist fails clearly."""
        with pytest.raises(ConfigError, match="does not exist"):
            load_settings(config_file=tmp_path / "nope.toml")

    def test_openai_env_vars_fill_the_api_section(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OPENAI_API_KEY and OPENAI_BASE_URL are honoured; BATCHGRADER_ wins over them."""
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-000000000000")
        monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:1/v1")
        s = load_settings().settings
        assert s.api.key is not None
        assert s.api.key.get_secret_value() == "sk-test-000000000000"
        assert s.api.base_url == "http://localhost:1/v1"
        monkeypatch.setenv("BATCHGRADER_API__BASE_URL", "http://localhost:2/v1")
        assert load_settings().settings.api.base_url == "http://localhost:2/v1"

    def test_state_dir_env_var(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """BATCHGRADER_STATE_DIR sets paths.state_dir."""
        monkeypatch.setenv("BATCHGRADER_STATE_DIR", str(tmp_path / "st"))
        assert load_settings().settings.state_dir() == tmp_path / "st"


class TestKeyByKeyMerge:
    """Setting one key of a section keeps every other default, at every level."""

    EXPECTED_OTHERS: ClassVar[dict[str, int]] = {
        "split_token_limit": 500_000,
        "force_chunk_count": 0,
    }

    def _check(self, overrides: dict[str, object] | None = None) -> None:
        s = load_settings(overrides).settings
        assert s.chunking.split_row_limit == 7
        for key, value in self.EXPECTED_OTHERS.items():
            assert getattr(s.chunking, key) == value

    def test_user_file(self, home: Path) -> None:
        """Only chunking.split_row_limit in the user file."""
        _write(home / "config.toml", "[chunking]\nsplit_row_limit = 7\n")
        self._check()

    def test_project_file(self, isolated_env: Path) -> None:
        """Only chunking.split_row_limit in ./batchgrader.toml."""
        _write(isolated_env / "batchgrader.toml", "[chunking]\nsplit_row_limit = 7\n")
        self._check()

    def test_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Only BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT in the environment."""
        monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", "7")
        self._check()

    def test_flag(self) -> None:
        """Only the flag for chunking.split_row_limit."""
        self._check({"chunking.split_row_limit": 7})

    def test_layers_merge_with_each_other(self, home: Path, isolated_env: Path) -> None:
        """User file sets one key and the project file another: both are kept."""
        _write(home / "config.toml", "[chunking]\nsplit_row_limit = 7\n")
        _write(isolated_env / "batchgrader.toml", "[chunking]\nforce_chunk_count = 3\n")
        s = load_settings().settings
        assert (s.chunking.split_row_limit, s.chunking.force_chunk_count) == (7, 3)
        assert s.chunking.split_token_limit == 500_000


class TestInvalidValues:
    @pytest.mark.parametrize(
        ("text", "needle"),
        [
            ("[chunking]\nbogus = 1\n", "Unknown setting 'chunking.bogus'"),
            ("[chunking]\nsplit_row_limit = -5\n", "'chunking.split_row_limit'"),
            ('[run]\nmax_simultaneous_batches = "many"\n', "'run.max_simultaneous_batches'"),
            ('[request]\nendpoint = "/v1/embeddings"\n', "'request.endpoint'"),
            ("[nosuchsection]\nx = 1\n", "Unknown setting 'nosuchsection'"),
        ],
    )
    def test_file_errors_name_the_file_and_key(
        self, isolated_env: Path, text: str, needle: str
    ) -> None:
        """Unknown key, wrong type, negative limit, unknown endpoint: file and key named."""
        path = _write(isolated_env / "batchgrader.toml", text)
        with pytest.raises(ConfigError) as info:
            load_settings()
        assert needle in info.value.message
        assert str(path) in info.value.message

    def test_env_error_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad environment value names the variable."""
        monkeypatch.setenv("BATCHGRADER_RUN__MAX_SIMULTANEOUS_BATCHES", "zero")
        with pytest.raises(ConfigError, match="BATCHGRADER_RUN__MAX_SIMULTANEOUS_BATCHES"):
            load_settings()

    def test_bad_toml_names_the_file(self, home: Path) -> None:
        """A user file that is not TOML is named."""
        path = _write(home / "config.toml", "[chunking\n")
        with pytest.raises(ConfigError, match="is not valid TOML") as info:
            load_settings()
        assert str(path) in info.value.message
