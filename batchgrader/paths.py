"""Where batchgrader keeps its files, as functions (nothing is computed at import).

``BATCHGRADER_HOME`` overrides the root of every per-user location at once (config,
data and logs), which keeps a test or a portable install fully isolated. Creating the
directories is the writer's job, at the moment it writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "batchgrader"
HOME_ENV = "BATCHGRADER_HOME"
PROJECT_CONFIG = "batchgrader.toml"
PYPROJECT = "pyproject.toml"


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


def ledger_db(state_dir: Path) -> Path:
    """The SQLite ledger inside a state dir."""
    return state_dir / "ledger.sqlite3"


def jobs_dir(state_dir: Path) -> Path:
    """Folder holding one sub-folder per job (chunk files, per-chunk results)."""
    return state_dir / "jobs"


def project_config_files(cwd: Path) -> tuple[Path, Path]:
    """The project-level files read from the working directory, in that order."""
    return cwd / PROJECT_CONFIG, cwd / PYPROJECT
