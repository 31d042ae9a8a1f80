"""Which provider answers a run: chosen by ``request.provider`` or the model's name."""

from __future__ import annotations

from importlib import import_module
from typing import cast

from batchgrader.errors import ConfigError
from batchgrader.providers.base import Provider
from batchgrader.providers.names import PROVIDERS
from batchgrader.settings import Settings


def provider_name(settings: Settings, model: str | None = None) -> str:
    """``request.provider``, or with ``auto`` the one the model's name implies.

    ``auto`` picks ``anthropic`` for model names starting with ``claude`` (an
    ``anthropic/`` prefix is allowed) and ``openai`` for every other name.
    """
    asked = settings.request.provider
    if asked != "auto":
        return asked
    name = (model or settings.request.model).strip().lower().removeprefix("anthropic/")
    return "anthropic" if name.startswith("claude") else "openai"


def provider_for(settings: Settings, name: str | None = None) -> Provider:
    """The provider ``name`` (default: the settings' choice), configured from the settings."""
    chosen = name or provider_name(settings)
    where = PROVIDERS.get(chosen)
    if where is None:  # a job stored by a provider this install does not have
        raise ConfigError(
            f"'{chosen}' is not a provider batchgrader knows.",
            hint="Use auto, " + ", ".join(PROVIDERS) + ".",
        )
    module, _, function = where.partition(":")
    return cast(Provider, getattr(import_module(module), function)(settings))
