"""The effective settings and files, as plain models for ``config show`` / ``config path``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from batchgrader import paths
from batchgrader.masking import mask
from batchgrader.prompting import tokenizer_cache
from batchgrader.settings import iter_settings
from batchgrader.settings.loading import LoadedSettings


class SettingRow(BaseModel):
    key: str
    value: Any
    source: str
    source_detail: str | None = None
    description: str = ""


class ConfigReport(BaseModel):
    settings: list[SettingRow]


class PathRow(BaseModel):
    name: str
    path: Path
    exists: bool


class PathReport(BaseModel):
    paths: list[PathRow]


def config_report(loaded: LoadedSettings) -> ConfigReport:
    """Every setting with its value (secrets masked) and the layer it came from."""
    rows = []
    for key, value, description in iter_settings(loaded.settings):
        layer = loaded.provenance.get(key)
        shown: Any = value
        if isinstance(value, SecretStr):
            shown = mask(value.get_secret_value()) if value.get_secret_value() else None
        elif value is not None and not isinstance(value, (bool, int, float, str, dict, Decimal)):
            shown = str(value)  # a Path: shown and serialised as text (money stays a number)
        rows.append(
            SettingRow(
                key=key,
                value=shown,
                source=layer.kind if layer else "default",
                source_detail=layer.label if layer and layer.path else None,
                description=description,
            )
        )
    return ConfigReport(settings=rows)


def path_report(loaded: LoadedSettings) -> PathReport:
    """Every file read (existing or not) and every directory batchgrader writes to.

    The tokenizer's encodings count as existing only when intact (tiktoken would use them).
    """
    rows = [PathRow(name=name, path=path, exists=exists) for name, path, exists in loaded.files]
    state = loaded.settings.state_dir()
    for name, path in (
        ("state dir", state),
        ("ledger", paths.ledger_db(state)),
        ("jobs dir", paths.jobs_dir(state)),
        ("log dir", loaded.settings.log_dir()),
    ):
        rows.append(PathRow(name=name, path=path, exists=path.exists()))
    tokenizer = tokenizer_cache.status()
    where = "" if tokenizer.source == "batchgrader" else f" ({tokenizer.source})"
    rows.append(
        PathRow(
            name=f"tokenizer cache{where}", path=tokenizer.folder, exists=tokenizer.folder.exists()
        )
    )
    rows += [
        PathRow(name=f"encoding {e.name}", path=e.path, exists=e.present)
        for e in tokenizer.encodings
    ]
    return PathReport(paths=rows)
