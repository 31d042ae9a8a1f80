"""OpenAI's Batch API, and every server compatible with it (llama-stack, vLLM, ...).

The SDK is imported by ``client`` alone (files and batches), and only when a run needs
the network; ``direct`` calls the synchronous endpoints over plain HTTP (direct mode).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from batchgrader.errors import UsageError
from batchgrader.prompting.options import RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.prompting.rules import ModelRules
from batchgrader.prompting.tokens import Counter
from batchgrader.providers.base import Account, BatchLimits, Provider
from batchgrader.providers.openai.requests import CHAT, RESPONSES, OpenAICodec
from batchgrader.settings import ApiSettings, Settings

if TYPE_CHECKING:
    from batchgrader.providers.http import JsonPoster
    from batchgrader.providers.openai.client import OpenAIBatches

#: Where requests go without ``api.base_url`` (OPENAI_BASE_URL).
DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Batch API limits: 50,000 requests and 200 MB of input file per batch.
LIMITS = BatchLimits(
    max_requests=50_000,
    max_bytes=200 * 1024 * 1024,
    custom_id=re.compile(r"^.{1,512}$", re.DOTALL),
)


class OpenAIProvider:
    """OpenAI (or a compatible server at ``api.base_url``)."""

    name = "openai"
    limits = LIMITS
    sampling = True

    def __init__(self, api: ApiSettings) -> None:
        self.api = api

    def endpoint(self, name: str, model: ModelRules, asked: str | None) -> tuple[str, str | None]:
        """Chat Completions, or Responses for a responses-only model; ``asked`` when the
        model is served there."""
        if asked is None:
            if model.responses_only:
                return RESPONSES, f"{name} is served only on {RESPONSES}: the requests go there."
            return CHAT, None
        only = RESPONSES if model.responses_only else CHAT if model.chat_only else None
        if only is not None and asked != only:
            raise UsageError(
                f"{name} is served only on {only}, not on {asked}: the provider would refuse "
                "every row.",
                hint=f"Drop --endpoint (request.endpoint) or set it to {only}.",
            )
        return asked, None

    def notes(self) -> list[str]:
        return []

    def account(self) -> Account:
        key = self.api.key.get_secret_value() if self.api.key else ""
        return Account(key, self.api.base_url or DEFAULT_BASE_URL)

    def codec(
        self, options: RequestOptions, prompt: Prompt, *, max_usage: int | None = None
    ) -> OpenAICodec:
        return OpenAICodec(options, prompt, max_usage=max_usage)

    def counter(self, options: RequestOptions, prompt: Prompt) -> Counter:
        return Counter.for_model(options.model)

    def request_counter(self, model: str) -> None:
        """None: tiktoken counts OpenAI requests exactly, offline."""
        return None

    def batch_transport(self) -> OpenAIBatches:
        # Imported here: the SDK takes about a second to import, and only the commands
        # that talk to the provider should pay for it.
        from batchgrader.providers.openai.client import OpenAIBatches

        return OpenAIBatches(self.api)

    def direct_transport(self, *, timeout: float) -> JsonPoster:
        from batchgrader.providers.openai.direct import openai_direct

        return openai_direct(self.api, self.account().base_url, timeout=timeout)


def from_settings(settings: Settings) -> Provider:
    """The provider ``request.provider = "openai"`` names (providers/names.py)."""
    return OpenAIProvider(settings.api)
