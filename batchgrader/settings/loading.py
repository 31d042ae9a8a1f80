"""Loading the settings: ``load_settings()`` reads every layer, merges, validates once.

Precedence, highest first (declared once, in ``_layers`` below):

1. CLI flags (the ``overrides`` mapping, dotted keys)
2. environment: ``BATCHGRADER_*`` (nested with ``__``) plus ``OPENAI_API_KEY``,
   ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``, ``ANTHROPIC_API_KEY``,
   ``ANTHROPIC_BASE_URL``, ``BATCHGRADER_STATE_DIR``
3. the project file: ``--config FILE``, else ``./batchgrader.toml``, else
   ``[tool.batchgrader]`` in ``./pyproject.toml``
4. the user file: ``config.toml`` in the platformdirs user config dir
5. the defaults (``batchgrader/settings/__init__.py``)

Each layer is evaluated to a dict with pydantic-settings' own sources, the dicts are
merged key by key (a file setting one key of a section keeps the other defaults), and
the merge is validated once. Knowing which layer supplied each key gives ``config show``
its provenance and lets an invalid value be reported with the file or variable it came
from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_settings import (
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from batchgrader import paths
from batchgrader.errors import ConfigError
from batchgrader.settings import ENV_PREFIX, Settings

#: Variables other tools set that batchgrader honours, and the key each one fills.
FOREIGN_ENV: dict[str, str] = {
    "OPENAI_API_KEY": "api.key",
    "OPENAI_BASE_URL": "api.base_url",
    "OPENAI_ORG_ID": "api.organization",
    "OPENAI_PROJECT_ID": "api.project",
    "ANTHROPIC_API_KEY": "anthropic.key",
    "ANTHROPIC_BASE_URL": "anthropic.base_url",
    "BATCHGRADER_STATE_DIR": "paths.state_dir",
}


class _ForeignEnvSource(PydanticBaseSettingsSource):
    """Environment variables that do not follow the ``BATCHGRADER_`` scheme."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for var, dotted in FOREIGN_ENV.items():
            value = os.environ.get(var)
            if value:
                _set_dotted(out, dotted, value)
        return out


@dataclass(frozen=True)
class Layer:
    """One level of the precedence: what it is called and the values it supplies."""

    kind: Literal["default", "user file", "project file", "env", "flag"]
    label: str
    values: dict[str, Any]
    path: Path | None = None


@dataclass(frozen=True)
class LoadedSettings:
    """Validated settings plus where each dotted key's value came from."""

    settings: Settings
    provenance: dict[str, Layer]
    files: list[tuple[str, Path, bool]] = field(default_factory=list)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    cwd: Path | None = None,
) -> LoadedSettings:
    """Read every layer, merge them key by key, validate once.

    ``overrides`` holds CLI flags as dotted keys (``{"request.model": "gpt-4o"}``);
    ``None`` values mean "flag not given" and are dropped. Raises ``ConfigError`` naming
    the file or variable and the key of the first invalid value.
    """
    cwd = cwd or Path.cwd()
    _check_environment()
    layers, files = _layers(overrides or {}, config_file, cwd)
    merged: dict[str, Any] = {}
    for layer in layers:
        _deep_merge(merged, layer.values)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, layers) from None
    provenance: dict[str, Layer] = {}
    for layer in layers:
        for key in _flatten(layer.values):
            provenance[key] = layer
    return LoadedSettings(settings=settings, provenance=provenance, files=files)


#: Variables of the libraries batchgrader uses that break its reading when malformed.
POLARS_CSV_CHUNK_SIZE = "POLARS_CSV_CHUNK_SIZE"


def _check_environment() -> None:
    """Refuse a malformed variable that would make polars fail on every valid file."""
    value = os.environ.get(POLARS_CSV_CHUNK_SIZE)
    if value is not None and not (value.isascii() and value.isdigit() and int(value) > 0):
        raise ConfigError(
            f"Environment variable {POLARS_CSV_CHUNK_SIZE} is {value!r}: polars reads CSV "
            "files in pieces of that many bytes and needs a whole number above 0.",
            hint=f"Unset it (batchgrader then reads 4 MB pieces) or set a number of bytes, "
            f"such as {POLARS_CSV_CHUNK_SIZE}=4194304.",
        )


def _layers(
    overrides: Mapping[str, Any], config_file: Path | None, cwd: Path
) -> tuple[list[Layer], list[tuple[str, Path, bool]]]:
    """Every layer, lowest priority first, and the files considered."""
    user_file = paths.user_config_file()
    project_toml, pyproject = paths.project_config_files(cwd)
    files: list[tuple[str, Path, bool]] = [("user file", user_file, user_file.is_file())]
    layers = [Layer("default", "default", {})]
    if user_file.is_file():
        layers.append(Layer("user file", str(user_file), _read_toml(user_file), user_file))

    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(
                f"Config file {config_file} does not exist.",
                hint="Check the path given to --config.",
            )
        files.append(("config file", config_file, True))
        values = _read_toml(config_file)
        layers.append(Layer("project file", str(config_file), values, config_file))
    else:
        files.append(("project file", project_toml, project_toml.is_file()))
        files.append(("pyproject [tool.batchgrader]", pyproject, pyproject.is_file()))
        if project_toml.is_file():
            values = _read_toml(project_toml)
            layers.append(Layer("project file", str(project_toml), values, project_toml))
        elif pyproject.is_file():
            values = _read_toml(pyproject, pyproject=True)
            if values:
                label = f"{pyproject} [tool.batchgrader]"
                layers.append(Layer("project file", label, values, pyproject))

    env = EnvSettingsSource(
        Settings, env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
    )()
    foreign = _ForeignEnvSource(Settings)()
    env_values: dict[str, Any] = {}
    _deep_merge(env_values, foreign)
    _deep_merge(env_values, env)
    layers.append(Layer("env", "environment", env_values))

    flags: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is not None:
            _set_dotted(flags, dotted, value)
    layers.append(Layer("flag", "command-line flag", flags))
    return layers, files


def _read_toml(path: Path, *, pyproject: bool = False) -> dict[str, Any]:
    try:
        source = TomlConfigSettingsSource(Settings, toml_file=path)
        if pyproject:  # only [tool.batchgrader] of a project's pyproject.toml
            table = source.toml_data.get("tool", {}).get("batchgrader", {})
            return dict(table) if isinstance(table, dict) else {}
        return dict(source())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}") from None


def _config_error(exc: ValidationError, layers: list[Layer]) -> ConfigError:
    """Name the first invalid key and the layer that supplied it."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    dotted = ".".join(loc)
    source = "defaults"
    for layer in reversed(layers):
        if _has_prefix(layer.values, loc):
            source = _describe(layer, loc)
            break
    if err["type"] == "extra_forbidden":
        message = f"Unknown setting '{dotted}' in {source}."
        hint = "Run 'batchgrader config show' to list the valid keys."
    else:
        message = f"Invalid setting '{dotted}' in {source}: {err['msg']}."
        hint = None
    more = len(exc.errors()) - 1
    if more:
        message += f" ({more} more invalid value{'s' if more > 1 else ''})"
    return ConfigError(message, hint=hint)


def _describe(layer: Layer, loc: list[str]) -> str:
    if layer.kind == "env":
        for var, dotted in FOREIGN_ENV.items():
            if dotted == ".".join(loc[:2]) and os.environ.get(var):
                return f"environment variable {var}"
        return "environment variable " + ENV_PREFIX + "__".join(p.upper() for p in loc)
    if layer.kind == "flag":
        return "a command-line flag"
    return layer.label


def _has_prefix(values: Mapping[str, Any], loc: list[str]) -> bool:
    node: Any = values
    for part in loc:
        if not isinstance(node, Mapping):
            return True
        matches = [k for k in node if str(k).lower() == part.lower()]
        if not matches:
            return False
        node = node[matches[0]]
    return True


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _deep_merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _deep_merge(current, value)
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of the leaf settings in a layer (a section's dict is not a leaf)."""
    keys: list[str] = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if not prefix and isinstance(value, Mapping):
            keys.extend(_flatten(value, dotted + "."))
        else:
            keys.append(dotted)
    return keys
