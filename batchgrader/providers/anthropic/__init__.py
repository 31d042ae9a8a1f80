"""Anthropic's Message Batches API (Claude models).

``requests`` builds the lines and bodies, ``results`` reads them back, ``tokens`` counts
offline (an approximation: Claude has no published tokenizer), ``counting`` counts
exactly through ``count_tokens``, ``client`` is the only module importing the SDK, and
only when a run needs the network: ``AnthropicBatches`` (Message Batches); ``direct``
calls the synchronous Messages API over plain HTTP (direct mode).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from batchgrader.errors import UsageError
from batchgrader.prompting.options import RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.prompting.rules import ModelRules
from batchgrader.providers.anthropic.counting import ExactCounter
from batchgrader.providers.anthropic.requests import MESSAGES, AnthropicCodec
from batchgrader.providers.anthropic.tokens import ApproximateCounter
from batchgrader.providers.base import Account, BatchLimits, Provider
from batchgrader.settings import AnthropicSettings, ApiSettings, Settings

if TYPE_CHECKING:
    from batchgrader.providers.anthropic.client import AnthropicBatches
    from batchgrader.providers.http import JsonPoster

#: Where requests go without ``anthropic.base_url`` (ANTHROPIC_BASE_URL).
DEFAULT_BASE_URL = "https://api.anthropic.com"

#: Message Batches limits: 100,000 requests and 256 MB of create body per batch. The
#: byte limit leaves room for the body's envelope (``{"requests":[...]}``) and reads
#: "MB" as the smaller, decimal megabyte.
LIMITS = BatchLimits(
    max_requests=100_000,
    max_bytes=256_000_000 - 1024,
    custom_id=re.compile(r"^[a-zA-Z0-9_-]{1,64}$"),
)


class AnthropicProvider:
    """Anthropic (or a compatible server at ``anthropic.base_url``)."""

    name = "anthropic"
    limits = LIMITS
    #: The current API version refuses sampling parameters on the models it serves.
    sampling = False

    def __init__(self, settings: AnthropicSettings, api: ApiSettings) -> None:
        self.settings = settings
        self.api = api

    def endpoint(self, name: str, model: ModelRules, asked: str | None) -> tuple[str, str | None]:
        """Every model is served on the Messages API (batched by Message Batches)."""
        if asked is not None:
            raise UsageError(
                f"{name} is answered by Anthropic's Messages API: --endpoint ({asked}) is an "
                "OpenAI setting.",
                hint="Drop --endpoint (request.endpoint), or pass --provider openai for an "
                "OpenAI-compatible server.",
            )
        return MESSAGES, None

    def notes(self) -> list[str]:
        """How input tokens are counted, when a key lets them be counted exactly."""
        if self.settings.key is None:
            return []
        rpm = self.settings.count_tokens_rpm
        calls = int(rpm * self.settings.count_tokens_seconds / 60)
        return [
            "Claude's input tokens are counted with Anthropic's free count_tokens before a "
            f"new job is planned: at most {calls:,} calls per file, {rpm:,} a minute "
            "(anthropic.count_tokens_rpm); bigger files are sampled."
        ]

    def account(self) -> Account:
        key = self.settings.key.get_secret_value() if self.settings.key else ""
        return Account(key, self.settings.base_url or DEFAULT_BASE_URL)

    def codec(
        self, options: RequestOptions, prompt: Prompt, *, max_usage: int | None = None
    ) -> AnthropicCodec:
        approx = ApproximateCounter(options, prompt)
        return AnthropicCodec(
            options, prompt, tokens=approx.count, error_band=approx.error_band, max_usage=max_usage
        )

    def counter(self, options: RequestOptions, prompt: Prompt) -> ApproximateCounter:
        return ApproximateCounter(options, prompt)

    def request_counter(self, model: str) -> ExactCounter | None:
        """count_tokens when a key is set (free); None offline."""
        key = self.settings.key
        if key is None or not key.get_secret_value():
            return None
        return ExactCounter(self.settings, self.api)

    def batch_transport(self) -> AnthropicBatches:
        # Imported here: only the commands that talk to the provider pay for the SDK.
        from batchgrader.providers.anthropic.client import AnthropicBatches

        return AnthropicBatches(self.settings, self.api)

    def direct_transport(self, *, timeout: float) -> JsonPoster:
        """The Messages API, called directly (direct mode, pilots, deadline tails)."""
        from batchgrader.providers.anthropic.direct import anthropic_direct

        return anthropic_direct(self.settings, self.account().base_url, timeout=timeout)


def from_settings(settings: Settings) -> Provider:
    """The provider ``request.provider = "anthropic"`` names (providers/names.py)."""
    return AnthropicProvider(settings.anthropic, settings.api)
