"""Anthropic's Message Batches API (Claude models).

``requests`` builds the lines and bodies, ``results`` reads them back, ``tokens`` counts
offline (an approximation: Claude has no published tokenizer), ``counting`` counts
exactly through ``count_tokens``, ``client`` is the only module importing the SDK, and
only when a run needs the network: ``AnthropicBatches`` (Message Batches) and
``AnthropicDirect`` (the synchronous Messages API, for direct mode).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from batchgrader.prompting.options import RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.providers.anthropic.counting import ExactCounter
from batchgrader.providers.anthropic.requests import AnthropicCodec
from batchgrader.providers.anthropic.tokens import ApproximateCounter
from batchgrader.providers.base import Account, BatchLimits, Provider
from batchgrader.settings import AnthropicSettings, ApiSettings, Settings

if TYPE_CHECKING:
    from batchgrader.providers.anthropic.client import AnthropicBatches, AnthropicDirect

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

    def __init__(self, settings: AnthropicSettings, api: ApiSettings) -> None:
        self.settings = settings
        self.api = api

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

    def direct_transport(self, *, timeout: float) -> AnthropicDirect:
        """The Messages API, called directly (direct mode, pilots, deadline tails)."""
        from batchgrader.providers.anthropic.client import AnthropicDirect

        return AnthropicDirect(self.settings, timeout=timeout)


def from_settings(settings: Settings) -> Provider:
    """The provider ``request.provider = "anthropic"`` names (providers/names.py)."""
    return AnthropicProvider(settings.anthropic, settings.api)
