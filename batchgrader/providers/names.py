"""The providers batchgrader knows, by name (a leaf: the CLI declares ``--provider``
with it at start-up, before any provider is loaded)."""

from __future__ import annotations

from typing import Literal

ProviderName = Literal["auto", "openai", "anthropic"]
