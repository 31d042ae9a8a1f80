"""The providers batchgrader knows, by name (a leaf: the settings check a provider's name
and the CLI declares ``--provider`` at start-up, before any provider is loaded).

``PROVIDERS`` maps each name to the function that builds the provider from the settings,
as ``module:function``: the module is imported only when a run needs it. A new provider
is its own package under ``providers/`` and one entry here (docs/providers.md).
"""

from __future__ import annotations

from typing import Literal

#: The choices of ``--provider``.
ProviderName = Literal["auto", "openai", "anthropic"]

PROVIDERS: dict[str, str] = {
    "openai": "batchgrader.providers.openai:from_settings",
    "anthropic": "batchgrader.providers.anthropic:from_settings",
}


def check_provider(name: str) -> str:
    """``name`` if it is ``auto`` or a known provider; ValueError naming the choices."""
    if name == "auto" or name in PROVIDERS:
        return name
    raise ValueError(f"'{name}' is not a provider: use auto, {', '.join(PROVIDERS)}")
