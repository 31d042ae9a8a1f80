"""The settings model: one ``Settings`` of sections, every key with its default and
description.

Settings are built only by ``load_settings()`` (``batchgrader/settings/loading.py``),
which layers flags, the environment, the project and user files over these defaults;
nothing reads them at import time.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from batchgrader import paths
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
