"""Which provider answers a run: chosen by ``request.provider`` or the model's name."""

from __future__ import annotations

from batchgrader.providers.base import Provider
from batchgrader.providers.openai import OpenAIProvider
from batchgrader.settings import Settings


def provider_for(settings: Settings) -> Provider:
    """The provider of the settings' model."""
    return OpenAIProvider(settings.api)
