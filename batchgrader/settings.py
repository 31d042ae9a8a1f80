"""Layered settings: one ``Settings`` model, loaded only by ``load_settings()``.

Precedence, highest first (declared once, in ``_layers``):

1. CLI flags (the ``overrides`` mapping, dotted keys)
2. environment: ``BATCHGRADER_*`` (nested with ``__``) plus ``OPENAI_API_KEY``,
   ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``, ``ANTHROPIC_API_KEY``,
   ``ANTHROPIC_BASE_URL``, ``BATCHGRADER_STATE_DIR``
3. the project file: ``--config FILE``, else ``./batchgrader.toml``, else
   ``[tool.batchgrader]`` in ``./pyproject.toml``
4. the user file: ``config.toml`` in the platformdirs user config dir
5. the defaults below

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
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from batchgrader import paths
from batchgrader.errors import ConfigError
from batchgrader.providers.names import check_provider

Endpoint = Literal["/v1/chat/completions", "/v1/responses"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
DEFAULT_REASONING_EFFORT: Final = "low"
ServiceTier = Literal["auto", "default", "flex", "priority"]
#: Who answers: ``auto`` picks ``anthropic`` for model names starting with ``claude``.
ENV_PREFIX = "BATCHGRADER_"


def _check_key(value: SecretStr | None, where: str) -> SecretStr | None:
    """An API key as HTTP headers can carry it: stripped, printable ASCII."""
    if value is None:
        return None
    key = value.get_secret_value().strip()
    if not key:
        return None
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ValueError(
            f"the API key ({where}) holds a space, a control or a non-ASCII character; "
            "copy it again without extra characters"
        )
    return SecretStr(key)


def _check_url(value: str | None) -> str | None:
    """A base URL must be an http(s) URL with a host."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL (such as https://api.openai.com/v1)")
    return url


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ApiSettings(_Section):
    """How to reach the provider (OpenAI or any OpenAI-compatible server)."""

    key: SecretStr | None = Field(None, description="API key (OPENAI_API_KEY).")
    base_url: str | None = Field(None, description="API base URL (OPENAI_BASE_URL).")
    organization: str | None = Field(None, description="OpenAI organization id.")
    project: str | None = Field(None, description="OpenAI project id.")
    timeout_seconds: float = Field(
        120.0, gt=0, allow_inf_nan=False, description="Timeout of one HTTP call."
    )
    max_retries: int = Field(
        6, ge=0, le=100, description="Retries of a transient API failure (network, 429, 5xx)."
    )
    retry_max_wait_seconds: float = Field(
        60.0, gt=0, allow_inf_nan=False, description="Longest wait between two retries."
    )

    @field_validator("key")
    @classmethod
    def _clean_key(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_key(value, "OPENAI_API_KEY / api.key")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_url(value)


class AnthropicSettings(_Section):
    """How to reach Anthropic (Claude models); timeouts and retries are api.*'s."""

    key: SecretStr | None = Field(None, description="Anthropic API key (ANTHROPIC_API_KEY).")
    base_url: str | None = Field(None, description="Anthropic API base URL (ANTHROPIC_BASE_URL).")
    count_tokens_rpm: int = Field(
        100,
        gt=0,
        le=1_000_000,
        description="Calls per minute to count_tokens when counting exactly (your tier's limit).",
    )
    count_tokens_seconds: float = Field(
        90.0,
        gt=0,
        allow_inf_nan=False,
        description="Time exact counting may take; bigger files are sampled.",
    )

    @field_validator("key")
    @classmethod
    def _clean_key(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_key(value, "ANTHROPIC_API_KEY / anthropic.key")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_url(value)


class RequestSettings(_Section):
    """What each request asks the judge."""

    model: str = Field("gpt-4.1-mini", min_length=1, description="Judge model.")
    provider: str = Field(
        "auto", description="openai or anthropic (auto: anthropic for claude* models)."
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        return check_provider(value)

    endpoint: Endpoint | None = Field(
        None, description="OpenAI endpoint (default: chat, or responses for responses-only models)."
    )
    response_field: str = Field(
        "response", min_length=1, description="Input column holding the graded text."
    )
    prompt: str | None = Field(
        None, description="Prompt preset name or prompt file (default: by examples)."
    )
    examples_file: Path | None = Field(
        None, description="File whose content fills {dynamic_examples}."
    )
    max_tokens_per_response: int | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Max output tokens of each request (default: 512, more for reasoning models).",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        DEFAULT_REASONING_EFFORT,
        description="Reasoning effort of reasoning models (unset: the model's default).",
    )
    service_tier: ServiceTier | None = Field(
        None, description="OpenAI service tier (flex: Batch rates, synchronous answers)."
    )
    temperature: float | None = Field(
        None, ge=0, le=2, description="Sampling temperature (unset: model default)."
    )
    structured_output: bool = Field(
        True, description="Ask for a JSON-schema answer (off: plain text)."
    )
    expected_output_tokens: int | None = Field(
        None, gt=0, description="Output tokens per row for the expected cost."
    )


class PathSettings(_Section):
    """Where files are read and written."""

    input_dir: Path = Field(Path("input"), description="Inputs when no FILE is given.")
    output_dir: Path = Field(Path("output"), description="Graded files and dry runs.")
    state_dir: Path | None = Field(
        None, description="Ledger and job folders (default: user data dir)."
    )
    pricing_file: Path | None = Field(
        None, description="Pricing CSV (default: the packaged pricing.csv)."
    )


class ChunkingSettings(_Section):
    """How inputs are cut into batches."""

    split_token_limit: int = Field(500_000, gt=0, le=10**12, description="Input tokens per batch.")
    split_row_limit: int | None = Field(None, gt=0, description="Rows per batch.")
    force_chunk_count: int = Field(0, ge=0, description="Cut into N equal batches.")


class RunSettings(_Section):
    """How batches are run."""

    max_simultaneous_batches: int = Field(2, gt=0, description="Batches in flight.")
    halt_on_chunk_failure: bool = Field(True, description="Stop a file after a failure.")
    max_enqueued_tokens: dict[str, PositiveInt] = Field(
        default_factory=dict, description="Enqueued-token cap per model."
    )
    poll_interval_seconds: float = Field(
        10.0, gt=0, le=86_400, allow_inf_nan=False, description="First poll delay."
    )
    poll_max_interval_seconds: float = Field(
        120.0, gt=0, le=86_400, allow_inf_nan=False, description="Longest poll delay."
    )
    max_batch_wait_seconds: float = Field(
        93_600,
        gt=0,
        allow_inf_nan=False,
        description="Cancel a batch not finished this long after its creation.",
    )
    delete_remote_files: bool = Field(
        True, description="Delete a batch's files at the provider once its results are stored."
    )
    mode: Literal["auto", "batch", "direct"] = Field(
        "auto",
        description="batch: a Batch API; direct: concurrent calls; auto: batch where the "
        "server has a Batch API, else direct.",
    )
    direct_concurrency: int = Field(
        16, gt=0, le=1024, description="Direct mode: requests in flight at once."
    )
    requests_per_minute: int | None = Field(
        None, gt=0, description="Direct mode: pace requests to at most this many a minute."
    )
    tokens_per_minute: int | None = Field(
        None, gt=0, description="Direct mode: pace requests to at most this many tokens a minute."
    )
    pilot_rows: int = Field(
        0, ge=0, le=100_000, description="Rows sent directly first, to check the prompt (0: off)."
    )
    pilot_min_parse_rate: float = Field(
        0.9, ge=0, le=1, description="A pilot parsing fewer answers than this stops the run."
    )
    deadline: str | None = Field(
        None,
        description="Finish by then (40s, 90m, 2h, 1d, or an ISO 8601 time): batches not done "
        "in time are finished directly.",
    )
    max_retries_per_row: int = Field(
        1, ge=0, description="Automatic resubmissions of rows an expired batch did not run."
    )


class ModelPrice(_Section):
    """A model's price per 1M tokens, for a model the pricing table lacks (or zero for a
    local server)."""

    input: Decimal = Field(ge=0, allow_inf_nan=False, description="USD per 1M input tokens.")
    output: Decimal = Field(ge=0, allow_inf_nan=False, description="USD per 1M output tokens.")
    cached_input: Decimal | None = Field(
        None, ge=0, allow_inf_nan=False, description="USD per 1M cached input tokens."
    )
    batch_discount: bool = Field(
        False, description="Batch API requests cost half (as OpenAI and Anthropic bill)."
    )


class BudgetSettings(_Section):
    """Limits checked before anything is submitted."""

    daily_token_limit: int | None = Field(None, gt=0, description="Tokens per day.")
    max_cost_usd: Decimal | None = Field(None, gt=0, description="Worst-case cost cap.")
    monthly_budget_usd: Decimal | None = Field(None, gt=0, description="Monthly cap.")
    confirm_above_usd: Decimal = Field(
        Decimal(5), ge=0, description="Ask before a run expected to cost more."
    )


class LoggingSettings(_Section):
    """Per-run log files."""

    dir: Path | None = Field(None, description="Log folder (default: user log dir).")
    max_logs: int = Field(20, gt=0, description="Run logs kept.")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level written to the log file."
    )


class Settings(BaseSettings):
    """Every setting batchgrader reads, grouped in sections."""

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        validate_default=True,
    )

    api: ApiSettings = ApiSettings()
    anthropic: AnthropicSettings = AnthropicSettings()
    request: RequestSettings = RequestSettings()
    paths: PathSettings = PathSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    run: RunSettings = RunSettings()
    budget: BudgetSettings = BudgetSettings()
    pricing: dict[str, ModelPrice] = Field(
        default_factory=dict, description="Prices of models the pricing table lacks."
    )
    logging: LoggingSettings = LoggingSettings()

    def state_dir(self) -> Path:
        """The state root in force."""
        return self.paths.state_dir or paths.default_state_dir()

    def log_dir(self) -> Path:
        """The log folder in force."""
        return self.logging.dir or paths.default_log_dir()


# --- sources ---------------------------------------------------------------------------

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


def iter_settings(settings: Settings) -> list[tuple[str, Any, str]]:
    """Every leaf setting as (dotted key, value, description), in model order."""
    rows: list[tuple[str, Any, str]] = []
    for section_name, section_field in Settings.model_fields.items():
        section = getattr(settings, section_name)
        if not isinstance(section, BaseModel):  # a table keyed by name ([pricing."model"])
            rows.append((section_name, section, section_field.description or ""))
            continue
        for name, info in type(section).model_fields.items():
            rows.append((f"{section_name}.{name}", getattr(section, name), info.description or ""))
    return rows
