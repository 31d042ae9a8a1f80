"""Where batchgrader keeps its files, as functions (nothing is computed at import).

``BATCHGRADER_HOME`` overrides the root of every per-user location at once (config,
data, logs and the tokenizer cache), which keeps a test or a portable install fully
isolated. Creating the directories is the writer's job, at the moment it writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "batchgrader"
HOME_ENV = "BATCHGRADER_HOME"
PROJECT_CONFIG = "batchgrader.toml"
PYPROJECT = "pyproject.toml"
#: tiktoken reads its cache folder from these variables, in this order.
TIKTOKEN_CACHE_ENVS = ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def user_config_file() -> Path:
    """The user-level ``config.toml``."""
    home = _home()
    if home is not None:
        return home / "config.toml"
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def default_state_dir() -> Path:
    """Default root of the ledger and job folders (``paths.state_dir`` overrides it)."""
    home = _home()
    if home is not None:
        return home / "data"
    return platformdirs.user_data_path(APP_NAME)


def default_log_dir() -> Path:
    """Default folder of the per-run log files (``logging.dir`` overrides it)."""
    home = _home()
    if home is not None:
        return home / "logs"
    return platformdirs.user_log_path(APP_NAME)


def default_tokenizer_cache_dir() -> Path:
    """batchgrader's own folder for tiktoken's encoding files (a per-user cache)."""
    home = _home()
    if home is not None:
        return home / "cache" / "tiktoken"
    return platformdirs.user_cache_path(APP_NAME) / "tiktoken"


def tokenizer_cache_env() -> str | None:
    """The tiktoken variable the user set to choose the cache folder (empty counts as unset)."""
    return next((name for name in TIKTOKEN_CACHE_ENVS if os.environ.get(name)), None)


def tokenizer_cache_dir() -> Path:
    """Where tiktoken's encoding files are read from and downloaded to.

    The folder the user gave tiktoken (``TIKTOKEN_CACHE_DIR``, or its older
    ``DATA_GYM_CACHE_DIR``), else batchgrader's own per-user cache folder rather than
    tiktoken's default in the temporary directory, which the system may empty.
    """
    name = tokenizer_cache_env()
    if name is not None:
        return Path(os.environ[name]).expanduser()
    return default_tokenizer_cache_dir()


def ledger_db(state_dir: Path) -> Path:
    """The SQLite ledger inside a state dir."""
    return state_dir / "ledger.sqlite3"


def jobs_dir(state_dir: Path) -> Path:
    """Folder holding one sub-folder per job (chunk files, per-chunk results)."""
    return state_dir / "jobs"


def project_config_files(cwd: Path) -> tuple[Path, Path]:
    """The project-level files read from the working directory, in that order."""
    return cwd / PROJECT_CONFIG, cwd / PYPROJECT
